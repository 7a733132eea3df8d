"""Compile-checks the CUDA code without a GPU or a CUDA build of torch.

* every csrc/**/*.cu (torch-free by design) and tests/cuda_sim/nvcc_*.cu with nvcc, for sm_80
  and sm_90, with the flags torch's extension build uses;
* every csrc/cuda/*_host.cpp (the torch side: guards, streams, registration) with
  `g++ -fsyntax-only` against torch's headers. A CPU build of torch ships its CUDA headers but
  not the generated c10/cuda/impl/cuda_cmake_macros.h; a stand-in is written to a temp dir.

Usage: python tools/check_cuda.py [--arch 80 --arch 90] [files...]; exits non-zero on failure.
"""

import argparse
import concurrent.futures
import glob
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Mirrors torch.utils.cpp_extension's default nvcc defines (half/bfloat16 operators off).
NVCC_FLAGS = [
    "-std=c++20",
    "-O2",
    "--expt-relaxed-constexpr",
    "-D__CUDA_NO_HALF_OPERATORS__",
    "-D__CUDA_NO_HALF_CONVERSIONS__",
    "-D__CUDA_NO_BFLOAT16_CONVERSIONS__",
    "-D__CUDA_NO_HALF2_OPERATORS__",
    "-Xcompiler=-Wall",
]


def find_nvcc():
    for cand in (os.environ.get("NVCC"), shutil.which("nvcc"), "/usr/local/cuda/bin/nvcc"):
        if cand and os.path.exists(cand):
            return cand
    return None


def cuda_include(nvcc: str) -> str:
    """The toolkit's include dir: CUDA_HOME's, else the one next to nvcc's bin/."""
    for home in (
        os.environ.get("CUDA_HOME"),
        os.path.dirname(os.path.dirname(os.path.realpath(nvcc))),
        "/usr/local/cuda",
    ):
        if home and os.path.exists(os.path.join(home, "include", "cuda_runtime.h")):
            return os.path.join(home, "include")
    raise FileNotFoundError("cuda_runtime.h not found: set CUDA_HOME")


def cu_files():
    # tests/cuda_sim/nvcc_*.cu are emulator tests that must also build for the GPU: they are what
    # instantiates the csrc/cuda/ptx wrappers' inline PTX.
    return sorted(
        glob.glob(os.path.join(ROOT, "csrc", "**", "*.cu"), recursive=True)
        + glob.glob(os.path.join(ROOT, "tests", "cuda_sim", "nvcc_*.cu"))
    )


def host_files():
    return sorted(glob.glob(os.path.join(ROOT, "csrc", "cuda", "*_host.cpp")))


def compile_cu(nvcc: str, path: str, archs) -> tuple:
    gencode = []
    for a in archs:
        gencode += ["-gencode", f"arch=compute_{a},code=sm_{a}"]
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            nvcc,
            *NVCC_FLAGS,
            *gencode,
            "-I",
            os.path.join(ROOT, "csrc"),
            "-c",
            path,
            "-o",
            os.path.join(tmp, "out.o"),
        ]
        r = subprocess.run(cmd, capture_output=True, text=True)
    return r.returncode, r.stdout + r.stderr


def check_host(path: str, cuda_inc: str) -> tuple:
    from torch.utils.cpp_extension import include_paths

    with tempfile.TemporaryDirectory() as stub:
        macros = os.path.join(stub, "c10", "cuda", "impl")
        os.makedirs(macros)
        with open(os.path.join(macros, "cuda_cmake_macros.h"), "w") as f:
            f.write("#pragma once\n#define C10_CUDA_BUILD_SHARED_LIBS\n")
        incs = [f"-I{p}" for p in include_paths()] + [f"-I{cuda_inc}", f"-I{os.path.join(ROOT, 'csrc')}"]
        # The stand-in goes last: a CUDA build of torch brings its own, which then wins.
        cmd = ["g++", "-std=c++20", "-fsyntax-only", "-Wall", *incs, f"-idirafter{stub}", path]
        r = subprocess.run(cmd, capture_output=True, text=True)
    return r.returncode, r.stdout + r.stderr


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", action="append", default=None, help="SM version (default: 80 and 90)")
    ap.add_argument("files", nargs="*", help="files to check (default: all)")
    args = ap.parse_args(argv)
    archs = args.arch or ["80", "90"]
    nvcc = find_nvcc()
    if nvcc is None:
        print("check_cuda: nvcc not found; set NVCC or install the CUDA toolkit", file=sys.stderr)
        return 2
    files = [os.path.abspath(f) for f in args.files] or cu_files() + host_files()
    jobs = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=int(os.environ.get("MAX_JOBS", "2"))) as pool:
        for f in files:
            if f.endswith(".cu"):
                jobs.append((f, pool.submit(compile_cu, nvcc, f, archs)))
            else:
                jobs.append((f, pool.submit(check_host, f, cuda_include(nvcc))))
        failed = 0
        for f, fut in jobs:
            rc, out = fut.result()
            rel = os.path.relpath(f, ROOT)
            what = (
                f"nvcc sm_{',sm_'.join(archs)}"
                if f.endswith(".cu")
                else "g++ -fsyntax-only (torch CUDA headers)"
            )
            print(f"{'ok  ' if rc == 0 else 'FAIL'} {rel}: {what}")
            if rc != 0:
                failed += 1
                print(out)
    print(f"check_cuda: {len(files) - failed}/{len(files)} files compile")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
