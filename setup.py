"""Build dlkernels._C: the CPU kernels always, the CUDA kernels when asked for or available.

Environment:
  DLKERNELS_CUDA=auto|1|0   auto (default): CUDA kernels when torch has CUDA and nvcc is found;
                            1: CUDA kernels or a build error, never a silent CPU-only build; 0: CPU only.
  TORCH_CUDA_ARCH_LIST      CUDA architectures (default "8.0;9.0+PTX": A100, H100/H200, PTX for newer).
  MAX_JOBS                  parallel compile jobs (read by torch's ninja build).
  DLKERNELS_DEBUG=1         -O0 -g instead of -O3.
"""

import glob
import os
import sys

import torch
from setuptools import find_packages, setup
from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension

ROOT = os.path.dirname(os.path.abspath(__file__))
VERSION = "0.1.0"
DEFAULT_CUDA_ARCHS = "8.0;9.0+PTX"


def want_cuda() -> bool:
    flag = os.environ.get("DLKERNELS_CUDA", "auto").strip().lower()
    if flag in ("0", "off", "no", "false"):
        return False
    available = torch.version.cuda is not None and CUDA_HOME is not None
    if flag in ("1", "on", "yes", "true"):
        if not available:
            sys.exit(
                "DLKERNELS_CUDA=1 but a CUDA build is impossible here: "
                f"torch {torch.__version__} has CUDA {torch.version.cuda}, CUDA_HOME={CUDA_HOME}. "
                "Install a CUDA build of torch and the CUDA toolkit (nvcc), or set DLKERNELS_CUDA=0."
            )
        return True
    if flag != "auto":
        sys.exit(f"DLKERNELS_CUDA must be auto, 1 or 0, not {flag!r}")
    return available


def sources(pattern: str) -> list[str]:
    return sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, pattern), recursive=True))


def write_build_info(with_cuda: bool, archs: str) -> None:
    path = os.path.join(ROOT, "dlkernels", "_build_info.py")
    text = (
        "# Written by setup.py at build time; do not edit.\n"
        f"VERSION = {VERSION!r}\n"
        f"TORCH_VERSION = {torch.__version__!r}\n"
        f"WITH_CUDA = {with_cuda!r}\n"
        f"CUDA_VERSION = {torch.version.cuda if with_cuda else None!r}\n"
        f"CUDA_ARCHS = {archs if with_cuda else None!r}\n"
    )
    old = open(path).read() if os.path.exists(path) else None
    if old != text:
        with open(path, "w") as f:
            f.write(text)


def extension():
    with_cuda = want_cuda()
    debug = os.environ.get("DLKERNELS_DEBUG", "0") == "1"
    opt = ["-O0", "-g"] if debug else ["-O3"]
    cxx = opt + ["-fopenmp", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    srcs = ["csrc/ops.cpp"] + sources("csrc/autograd/*.cpp") + sources("csrc/cpu/**/*.cpp")
    kwargs = dict(
        name="dlkernels._C",
        include_dirs=[os.path.join(ROOT, "csrc")],
        extra_link_args=["-fopenmp"],
        py_limited_api=True,
    )
    archs = os.environ.setdefault("TORCH_CUDA_ARCH_LIST", DEFAULT_CUDA_ARCHS) if with_cuda else ""
    write_build_info(with_cuda, archs)
    if with_cuda:
        srcs += sources("csrc/cuda/**/*.cpp") + sources("csrc/cuda/**/*.cu")
        nvcc = opt + ["-lineinfo", "--expt-relaxed-constexpr"]
        return CUDAExtension(sources=srcs, extra_compile_args={"cxx": cxx, "nvcc": nvcc}, **kwargs)
    return CppExtension(sources=srcs, extra_compile_args={"cxx": cxx}, **kwargs)


setup(
    name="dlkernels",
    version=VERSION,
    # dlkernels/data holds the bundled data set (no Python): a data-only package.
    packages=find_packages(include=["dlkernels", "dlkernels.*"]) + ["dlkernels.data"],
    package_data={"dlkernels.data": ["*.npz", "*.md", "LICENSE*"]},
    ext_modules=[extension()],
    cmdclass={"build_ext": BuildExtension},
    options={"bdist_wheel": {"py_limited_api": "cp39"}},
)
