"""The torch-free core of the CUDA SIMT emulator (csrc/cuda/sim, csrc/cuda/ptx).

Compiles the C++ test programs of tests/cuda_sim with g++ as plain C++ under the emulator
(-DDLK_CUDA_SIM), runs them and checks their verdicts: barrier and warp-collective semantics,
planted bugs being caught, the PTX fragment layouts, cp.async, csrc/cuda/activation.cu through its
launchers and the GEMM core csrc/cuda/gemm.cu. The sanitizer variant (tests named
``test_sanitizer_*``; select them with ``-k sanitizer``) rebuilds the programs with ASan + UBSan
and shows planted out-of-bounds shared and global accesses are reported.

Binaries are cached by a hash of every source and flag, in $DLK_CUDA_SIM_CACHE or the temp dir.
"""

import functools
import glob
import hashlib
import os
import shutil
import subprocess
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CSRC = os.path.join(ROOT, "csrc")
TESTS = os.path.join(ROOT, "tests", "cuda_sim")
CXX = os.environ.get("CXX", "g++")

BASE_FLAGS = [
    "-std=c++20",
    "-DDLK_CUDA_SIM",
    f"-I{os.path.join(CSRC, 'cuda', 'sim', 'include')}",
    f"-I{CSRC}",
    f"-I{TESTS}",
    "-Wall",
    "-Wno-unknown-pragmas",  # #pragma unroll
    "-pthread",
]
VARIANTS = {
    "opt": ["-O1"],
    # -fsanitize-sections gives the static __shared__ variables (one section) ASan redzones.
    "san": [
        "-O1",
        "-g",
        "-fno-omit-frame-pointer",
        "-fsanitize=address,undefined",
        "-fno-sanitize-recover=undefined",
        "-fsanitize-sections=dlk_sim_shared",
    ],
}
PROGRAMS = {
    "core": ["tests/cuda_sim/test_core.cu"],
    "ptx": ["tests/cuda_sim/test_ptx.cu"],
    "tc_gemm": ["tests/cuda_sim/test_tc_gemm.cu", "tests/cuda_sim/nvcc_tc_gemm.cu"],
    "activation": ["tests/cuda_sim/test_activation.cu", "csrc/cuda/activation.cu"],
    "gemm": ["tests/cuda_sim/test_gemm_cuda.cu", "csrc/cuda/gemm.cu"],
    "asan_oob": ["tests/cuda_sim/asan_oob.cu"],
}
RUN_ENV = {
    "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
}

pytestmark = [pytest.mark.cuda_sim, pytest.mark.skipif(shutil.which(CXX) is None, reason=f"{CXX} not found")]


@functools.lru_cache(maxsize=1)
def _digest() -> str:
    h = hashlib.sha256()
    files = sorted(
        glob.glob(os.path.join(CSRC, "cuda", "**", "*"), recursive=True)
        + glob.glob(os.path.join(CSRC, "common", "*"))
        + glob.glob(os.path.join(TESTS, "*"))
    )
    for f in files:
        if os.path.isfile(f):
            h.update(os.path.relpath(f, ROOT).encode())
            with open(f, "rb") as fh:
                h.update(fh.read())
    h.update(repr((CXX, BASE_FLAGS, VARIANTS)).encode())
    return h.hexdigest()[:16]


def _cache_dir() -> str:
    base = os.environ.get("DLK_CUDA_SIM_CACHE") or os.path.join(
        tempfile.gettempdir(), f"dlk-cuda-sim-{os.getuid()}"
    )
    d = os.path.join(base, _digest())
    os.makedirs(d, exist_ok=True)
    return d


@functools.cache
def build(name: str, variant: str) -> str:
    """Path of the program `name` built with `variant`'s flags (compiled once, one job at a time)."""
    out = os.path.join(_cache_dir(), f"{name}-{variant}")
    if os.path.exists(out):
        return out
    flags = BASE_FLAGS + VARIANTS[variant]
    objs = []
    for src in PROGRAMS[name]:
        obj = os.path.join(_cache_dir(), f"{name}-{variant}-{os.path.basename(src)}.o")
        cmd = [CXX, *flags, "-x", "c++", "-c", os.path.join(ROOT, src), "-o", obj]
        r = subprocess.run(cmd, capture_output=True, text=True)
        assert r.returncode == 0, f"{' '.join(cmd)}\n{r.stderr}"
        objs.append(obj)
    tmp = out + f".tmp{os.getpid()}"
    r = subprocess.run([CXX, *flags, *objs, "-o", tmp], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    os.replace(tmp, out)  # atomic: a concurrent session never runs a half-written binary
    return out


def run(name: str, variant: str = "opt", *args: str, env=None, expect_rc=0):
    exe = build(name, variant)
    r = subprocess.run(
        [exe, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **RUN_ENV, **(env or {})},
    )
    if expect_rc is not None:
        assert r.returncode == expect_rc, f"rc {r.returncode}\n{r.stdout}\n{r.stderr[-4000:]}"
    return r


def passed(stdout: str) -> set:
    return {line.split()[1] for line in stdout.splitlines() if line.startswith("ok ")}


CORE_TESTS = [
    "barrier_reduction_correct_under_every_seed",
    "planted_missing_syncthreads_is_caught",
    "barrier_orders_shared_writes",
    "syncthreads_count_and_or",
    "early_exit_threads_release_barrier",
    "planted_unwritten_shared_reads_poison",
    "planted_divergent_barrier_is_reported",
    "dynamic_shared_memory",
    "launch_config_is_validated",
    "three_dimensional_indices",
    "shuffles_full_mask_all_widths",
    "warp_reduction_by_shuffle",
    "votes_and_shuffles_with_partial_masks",
    "warp_collective_misuse_is_reported",
    "atomics_over_a_grid",
    "seed_reorders_blocks_and_threads",
    "concurrent_launches_from_two_os_threads",
    "half_conversions_match_float16_rne",
    "bfloat16_conversions_round_to_nearest_even",
]
PTX_TESTS = [
    "layouts_match_ptx_isa_tables",
    "mma_m16n8k16_f16_and_bf16_match_scalar_gemm",
    "mma_m16n8k8_tf32_matches_scalar_gemm",
    "ldmatrix_fragments_match_ptx_isa",
    "cp_async_groups_and_waits",
    "planted_refill_before_barrier_is_caught",
]
ACTIVATION_TESTS = [
    "activation_f32",
    "activation_f64",
    "activation_f16",
    "activation_bf16",
    "activation_grid_stride",
]
GEMM_TESTS = [
    "gemm_f16",
    "gemm_bf16",
    "gemm_tf32",
    "gemm_f32",
    "gemm_f64",
    "gemm_same_bits_under_every_seed",
    "gemm_empty_and_bad_tile",
]


@pytest.mark.parametrize("name", CORE_TESTS)
def test_core(name):
    r = run("core", "opt", name)
    assert name in passed(r.stdout), r.stdout


def test_planted_bugs_are_reported_with_their_cause():
    r = run("core", "opt", "planted_divergent_barrier_is_reported")
    assert "divergent __syncthreads" in r.stderr and "test_core.cu:" in r.stderr
    assert "deadlock in block (0,0,0)" in r.stderr
    r = run("core", "opt", "planted_missing_syncthreads_is_caught")
    assert "seeds give a wrong sum" in r.stdout


@pytest.mark.parametrize("seed", ["0", "12345"])
def test_seed_comes_from_the_environment(seed):
    r = run("core", "opt", "seed_from_environment", env={"DLK_CUDA_SIM_SEED": seed})
    assert f"seed={seed}" in r.stdout


def test_whole_core_program_under_several_seeds():
    for seed in ("0", "3", "99"):
        r = run("core", "opt", env={"DLK_CUDA_SIM_SEED": seed})
        assert passed(r.stdout) >= set(CORE_TESTS), r.stdout


@pytest.mark.parametrize("name", PTX_TESTS)
def test_ptx(name):
    r = run("ptx", "opt", name)
    assert name in passed(r.stdout), r.stdout


def test_tensor_core_gemm_from_wrappers():
    r = run("tc_gemm", "opt")
    assert {"tensor_core_gemm_matches_scalar", "every_wrapper_runs"} <= passed(r.stdout)


@pytest.mark.parametrize("name", ACTIVATION_TESTS)
def test_activation(name):
    r = run("activation", "opt", name)
    assert name in passed(r.stdout), r.stdout


@pytest.mark.parametrize("name", GEMM_TESTS)
def test_gemm(name):
    r = run("gemm", "opt", name)
    assert name in passed(r.stdout), r.stdout


# ---- sanitizer variant -------------------------------------------------------------------------


@pytest.mark.sanitizer
@pytest.mark.parametrize("name", ["core", "ptx", "tc_gemm", "activation", "gemm"])
def test_sanitizer_clean(name):
    r = run(name, "san")
    assert "0 failure(s)" in r.stdout
    assert "ERROR: AddressSanitizer" not in r.stderr and "runtime error" not in r.stderr, r.stderr[-4000:]


@pytest.mark.sanitizer
def test_sanitizer_in_bounds_control_runs_clean():
    r = run("asan_oob", "san", "none")
    assert "ERROR: AddressSanitizer" not in r.stderr


@pytest.mark.sanitizer
@pytest.mark.parametrize(
    "mode,kind",
    [
        ("static_shared", "global-buffer-overflow"),  # static __shared__ in its redzoned section
        ("dynamic_shared", "heap-buffer-overflow"),  # exact-size dynamic shared allocation
        ("global", "heap-buffer-overflow"),  # a kernel without its bounds check
    ],
)
def test_sanitizer_reports_planted_out_of_bounds(mode, kind):
    r = run("asan_oob", "san", mode, expect_rc=None)
    assert r.returncode != 0
    assert f"ERROR: AddressSanitizer: {kind}" in r.stderr, r.stderr[-4000:]
    assert "asan_oob.cu" in r.stderr  # the report points at the kernel line
