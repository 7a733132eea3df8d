"""Shared test infrastructure for the dlkernels ops: devices, CPU ISAs, dtypes, tolerances, inputs.

Every op family (activations, conv2d, pooling, linear, losses) builds on these:

* devices: ``device_params()`` gives one CPU case per instruction set the kernels can run with,
  a CUDA case that carries ``pytest.mark.cuda`` and skips cleanly without a usable GPU, and a
  "cuda_sim" case (``pytest.mark.cuda_sim``): the CUDA kernels on the SIMT emulator, on CPU
  tensors (dlkernels.testing.cuda_sim). The ``device`` fixture (conftest.py) turns the CPU cases
  into "cpu" with that ISA active. A test makes its tensors on ``torch_device(device)``.
* dtypes: ``DTYPES[device]`` are the dtypes the kernels support there, ``UNSUPPORTED_DTYPES``
  some they must refuse.
* tolerances: a ``Tol`` names its reason; ``assert_close`` prints it on failure. Tolerances come
  from error analysis or a measurement written down next to them, never from "make it pass".
"""

from __future__ import annotations

import dataclasses
import math
import os

import pytest
import torch

import dlkernels
from dlkernels import _build_info
from dlkernels.testing import cuda_sim_available

# ---- randomized tests ---------------------------------------------------------------------------


def fuzz_seed(default: int | str) -> int | str:
    """The seed of a randomized differential test: its own fixed one, or one offset from it by
    DLKERNELS_TEST_SEED, so that a campaign (`DLKERNELS_TEST_SEED=17 pytest -k randomized`) draws
    other cases; a failure replays under the same value. A string seed (random.Random's) gets the
    offset appended."""
    offset = os.environ.get("DLKERNELS_TEST_SEED")
    if not offset:
        return default
    return f"{default}#{int(offset)}" if isinstance(default, str) else default + 1_000_003 * int(offset)


# ---- devices and CPU instruction sets ------------------------------------------------------------

CPU_ISAS: tuple[str, ...] = tuple(dlkernels.cpu_isas())

CUDA_USABLE = torch.cuda.is_available() and bool(_build_info.WITH_CUDA)
if not torch.cuda.is_available():
    CUDA_SKIP_REASON = "no CUDA device"
elif not _build_info.WITH_CUDA:
    CUDA_SKIP_REASON = "dlkernels was built without its CUDA kernels"
else:
    CUDA_SKIP_REASON = ""

requires_cuda = pytest.mark.skipif(not CUDA_USABLE, reason=CUDA_SKIP_REASON or "CUDA usable")
CUDA_MARKS = (pytest.mark.cuda, requires_cuda)

# "cuda_sim": the CUDA kernels run emulated on CPU tensors (the device fixture enters
# dlkernels.testing.cuda_sim() and skips a test that reaches an op without an emulated kernel).
CUDA_SIM_USABLE = cuda_sim_available()
requires_cuda_sim = pytest.mark.skipif(
    not CUDA_SIM_USABLE, reason="dlkernels was built without the emulated CUDA kernels (DLKERNELS_CUDA_SIM=0)"
)
CUDA_SIM_MARKS = (pytest.mark.cuda_sim, requires_cuda_sim)


def device_params(every_isa: bool = True) -> list:
    """Parameters for the ``device`` fixture: ("cpu", isa) per ISA (or once, with the default ISA,
    when ``every_isa`` is false), ("cuda", None) and ("cuda_sim", None)."""
    cpu = (
        [pytest.param(("cpu", isa), id=f"cpu-{isa}") for isa in CPU_ISAS]
        if every_isa
        else [pytest.param(("cpu", None), id="cpu")]
    )
    return cpu + [
        pytest.param(("cuda", None), id="cuda", marks=CUDA_MARKS),
        pytest.param(("cuda_sim", None), id="cuda_sim", marks=CUDA_SIM_MARKS),
    ]


def torch_device(device: str) -> str:
    """The torch device of a test device: the emulated CUDA kernels run on CPU tensors."""
    return "cpu" if device == "cuda_sim" else device


def not_on_cuda_sim(device: str, why: str) -> None:
    """Skips a case whose assertion only holds on a real CUDA device, saying why."""
    if device == "cuda_sim":
        pytest.skip(f"not emulated: {why}")


# Largest tensor, in elements, a cuda_sim case builds: the emulator runs every CUDA thread as a
# fiber on one CPU thread. Past this the CUDA kernels' grid-stride loops (grid_for caps the grid at
# 32 blocks per SM, 4 emulated SMs) already take many passes.
CUDA_SIM_MAX_NUMEL = 1 << 20


def sim_scaled(shape, device: str, max_numel: int = CUDA_SIM_MAX_NUMEL) -> tuple:
    """``shape`` for ``device``: under cuda_sim, its largest dimension halved (rounded up) until it
    has at most ``max_numel`` elements; else unchanged."""
    shape = tuple(shape)
    if device != "cuda_sim":
        return shape
    dims = list(shape)
    while dims and math.prod(dims) > max_numel:
        i = max(range(len(dims)), key=dims.__getitem__)
        dims[i] = (dims[i] + 1) // 2
    return tuple(dims)


# The dtypes each device's kernels implement, and some they must reject with NotImplementedError.
DTYPES = {
    "cpu": (torch.float32, torch.float64),
    "cuda": (torch.float32, torch.float64, torch.float16, torch.bfloat16),
}
DTYPES["cuda_sim"] = DTYPES["cuda"]
UNSUPPORTED_DTYPES = {
    "cpu": (
        torch.float16,
        torch.bfloat16,
        torch.int32,
        torch.int64,
        torch.uint8,
        torch.bool,
        torch.complex64,
    ),
    "cuda": (torch.int32, torch.int64, torch.uint8, torch.bool, torch.complex64),
}
UNSUPPORTED_DTYPES["cuda_sim"] = UNSUPPORTED_DTYPES["cuda"]

# c10's names for dtypes, as they appear in the NotImplementedError messages.
C10_NAMES = {
    torch.float16: "Half",
    torch.bfloat16: "BFloat16",
    torch.int32: "Int",
    torch.int64: "Long",
    torch.uint8: "Byte",
    torch.bool: "Bool",
    torch.complex64: "ComplexFloat",
}

DTYPE_NAMES = {
    torch.float32: "float32",
    torch.float64: "float64",
    torch.float16: "float16",
    torch.bfloat16: "bfloat16",
}


def device_dtype_params(every_isa: bool = True) -> list:
    """(device, dtype) pairs for tests that take both fixtures: only the dtypes each device supports."""
    out = []
    for p in device_params(every_isa):
        dev = p.values[0][0]
        for dtype in DTYPES[dev]:
            out.append(pytest.param(p.values[0], dtype, id=f"{p.id}-{DTYPE_NAMES[dtype]}", marks=p.marks))
    return out


# ---- tolerances ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Tol:
    """An ``assert_close`` tolerance, |actual - expected| <= atol + rtol * |expected|, with its reason."""

    rtol: float
    atol: float
    why: str

    def __str__(self) -> str:
        return f"rtol={self.rtol:.3g}, atol={self.atol:.3g} ({self.why})"


EXACT = Tol(0.0, 0.0, "same arithmetic as the reference: equal values, NaN where it has NaN")


def eps(dtype: torch.dtype) -> float:
    """Relative spacing of the dtype: one unit in the last place is at most eps * |x|."""
    return torch.finfo(dtype).eps


def tiny(dtype: torch.dtype) -> float:
    """Smallest normal number of the dtype; below it values carry fewer significant bits."""
    return torch.finfo(dtype).smallest_normal


def subnormal_min(dtype: torch.dtype) -> float:
    """Smallest positive subnormal: the absolute spacing of values below ``tiny``."""
    return torch.finfo(dtype).smallest_normal * torch.finfo(dtype).eps


def eps_tol(n: float, dtype: torch.dtype, why: str) -> Tol:
    """``n`` units of relative precision of ``dtype``; results below the normal range, which carry
    fewer significant bits, are compared absolutely to within ``tiny(dtype)``."""
    return Tol(n * eps(dtype), tiny(dtype), f"{n:g} eps of {DTYPE_NAMES.get(dtype, dtype)}: {why}")


def gamma(k: int, dtype: torch.dtype) -> float:
    """gamma_k = k u / (1 - k u), u = eps / 2: the relative bound of k roundings in ``dtype``
    (a sum of k products in any order is within gamma_k |A| |B| of the exact one)."""
    u = torch.finfo(dtype).eps / 2
    return k * u / (1 - k * u) if k else 0.0


def product_bound(k: int, dtype: torch.dtype, mag: torch.Tensor) -> torch.Tensor:
    """The elementwise bound on |ours - ref| for a product of k terms (plus any bias) in ``dtype``
    checked against torch's float64 product of the same values, ``mag`` = |A| |B| (+ |bias|):
    gamma_k in ``dtype`` for ours plus gamma_k in float64 for the reference, which is rounded too
    (at float64 the two are equal, and counting only the first fails on a correct result)."""
    return (gamma(k, dtype) + gamma(k, torch.float64)) * mag


# Tolerance for a result computed in another order than the reference (a reduction, a conv,
# a matmul): torch.testing's own defaults, which torch's test suite uses for the same purpose.
DEFAULT_TOL = {
    torch.float64: Tol(1e-7, 1e-7, "torch.testing default for float64"),
    torch.float32: Tol(1.3e-6, 1e-5, "torch.testing default for float32"),
    torch.float16: Tol(1e-3, 1e-5, "torch.testing default for float16"),
    torch.bfloat16: Tol(1.6e-2, 1e-5, "torch.testing default for bfloat16"),
}


_SAME_SIZE_INT = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def bitwise_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Same shape, dtype, device and bit patterns (so NaN equals NaN, and -0.0 differs from 0.0)."""
    if a.shape != b.shape or a.dtype != b.dtype or a.device != b.device:
        return False
    if not (a.is_floating_point() or a.is_complex()):
        return torch.equal(a, b)
    as_int = _SAME_SIZE_INT.get(a.element_size())
    if as_int is None:  # complex128: no 16-byte integer type; callers fall back to the slow path
        return False
    return torch.equal(a.view(as_int), b.view(as_int))


def assert_close(actual, expected, tol: Tol, what: str = "", *, check_stride: bool = False) -> None:
    """``torch.testing.assert_close`` with NaNs compared by position, dtype and device checked, and
    the tolerance and its reason in the failure message."""
    if (
        isinstance(actual, torch.Tensor)
        and isinstance(expected, torch.Tensor)
        and (not check_stride or actual.stride() == expected.stride())
        and bitwise_equal(actual, expected)
    ):
        return  # identical bits pass under any tolerance; skips the slow element-wise path

    def msg(generated: str) -> str:
        head = f"{what}: " if what else ""
        return f"{head}{generated}\nTolerance: {tol}"

    torch.testing.assert_close(
        actual,
        expected,
        rtol=tol.rtol,
        atol=tol.atol,
        equal_nan=True,
        check_dtype=True,
        check_device=True,
        check_stride=check_stride,
        msg=msg,
    )


def assert_unchanged(t: torch.Tensor, before: torch.Tensor, what: str = "input") -> None:
    """``t`` still holds the bits of ``before``, its earlier clone (NaN payloads and signed zeros
    included: a kernel that merely reads ``t`` must not touch it)."""
    if not bitwise_equal(t, before):
        assert_close(t, before, EXACT, f"{what} was modified")
        raise AssertionError(f"{what} was modified: same values, different bits (signed zero or NaN payload)")


# ---- inputs --------------------------------------------------------------------------------------


def special_values(dtype: torch.dtype) -> torch.Tensor:
    """Values kernels tend to get wrong, in ``dtype`` on the CPU: signed zeros, NaN, infinities,
    the largest finite values, subnormals, and the points where exp() overflows or underflows."""
    fi = torch.finfo(dtype)
    nan, inf = float("nan"), float("inf")
    sub = fi.smallest_normal * fi.eps  # smallest subnormal
    # fmt: off
    values = [
        0.0, -0.0, 1.0, -1.0, 0.5, -0.5, nan, inf, -inf,
        fi.max, -fi.max, fi.max / 2, -fi.max / 2,
        fi.smallest_normal, -fi.smallest_normal, sub, -sub, sub * 3, -sub * 3,
        fi.smallest_normal / 3, -fi.smallest_normal / 3,
        # sigmoid: exp(-x) overflows / its result underflows around these (float16: 11,
        # float32: 88, float64: 709), and saturates to 1 from about 17 (float32) and 37 (float64).
        -11.5, 11.5, 17.0, -17.0, 37.0, -37.0, -87.5, -88.5, -89.5, 88.5, -100.0, 100.0,
        -103.5, -104.5, -709.5, -745.0, -746.0, 709.5, -1000.0, 1000.0,
        1e30, -1e30, 1e-30, -1e-30,
    ]
    # fmt: on
    return torch.tensor(values, dtype=torch.float64).to(dtype)


def make_input(
    shape,
    dtype: torch.dtype,
    device: str,
    *,
    scale: float = 4.0,
    specials: bool = True,
    generator_seed: int = 0,
) -> torch.Tensor:
    """A contiguous tensor of ``shape``: normal values times ``scale``, with the special values
    scattered over it (first and last element included, so both the vector body and the tail of
    a kernel see them) when it has room for them."""
    g = torch.Generator().manual_seed(generator_seed)
    x = torch.randn(shape, generator=g, dtype=torch.float64) * scale
    flat = x.view(-1)
    if specials and flat.numel() > 0:
        sv = special_values(dtype).to(torch.float64)
        # Shuffled per seed, so two inputs of one shape (input and grad_output) pair special
        # values with different partners.
        sv = sv[torch.randperm(sv.numel(), generator=g)]
        k = min(flat.numel(), sv.numel())
        # Spread evenly from the first to the last element, so they fall on every lane position.
        pos = torch.linspace(0, flat.numel() - 1, k).round().long()
        flat[pos] = sv[:k]
    return x.to(dtype).to(torch_device(device))


# Shapes for elementwise ops: 0-dim, empty (also with a non-empty dimension), single elements,
# primes, a numel that no vector width (2, 4, 8, 16 lanes) divides, and over a million elements
# so the CPU kernels split the work across threads (grain 16384), here at a boundary that is not
# a multiple of a vector width (half of 1021 * 1031 rounded up is 2 * an odd number).
ELEMENTWISE_SHAPES = [
    (),
    (0,),
    (0, 5),
    (1,),
    (7,),
    (13, 17),
    (3, 5, 7, 11),
    (37, 3),
    (2, 33),
    (1021, 1031),
]


# ---- layouts -------------------------------------------------------------------------------------


# Fills the storage a strided or offset view does not cover; chosen so that any activation would
# change it (relu -> 0, sigmoid -> 0.18, leaky_relu -> slope * -1.5), so an in-place kernel that
# writes outside its view is caught. NaN would not do: most ops map NaN to NaN.
GAP_SENTINEL = -1.5

LAYOUTS = ("transposed", "strided", "offset", "channels_last")


def with_layout(x: torch.Tensor, layout: str) -> torch.Tensor:
    """A tensor equal to ``x`` (same shape and values) stored with ``layout``:

    contiguous; transposed (dense, last two dimensions' strides swapped); strided (every other
    element of a larger tensor along the last dimension: not dense); offset (a view at storage
    offset 1, so its data pointer is misaligned for every vector width); channels_last (4-D).
    Strided and offset views fill the rest of their storage with GAP_SENTINEL."""
    if layout == "contiguous":
        return x.contiguous()
    if layout == "transposed":
        return x.mT.contiguous().mT if x.dim() >= 2 else x.clone()
    if layout == "strided":
        if x.dim() == 0:
            return x.clone()
        big = torch.full((*x.shape[:-1], 2 * x.shape[-1]), GAP_SENTINEL, dtype=x.dtype, device=x.device)
        view = big[..., ::2]
        view.copy_(x)
        return view
    if layout == "offset":
        storage = torch.full((x.numel() + 1,), GAP_SENTINEL, dtype=x.dtype, device=x.device)
        view = storage[1:].view(x.shape)
        view.copy_(x)
        return view
    if layout == "channels_last":
        return x.contiguous(memory_format=torch.channels_last)
    raise ValueError(layout)


def expanded(x: torch.Tensor, n: int = 3) -> torch.Tensor:
    """``x`` repeated ``n`` times along a new first dimension without copying (stride 0): its
    elements alias each other, so it is an input for out-of-place ops only."""
    return x.unsqueeze(0).expand(n, *x.shape)


def is_channels_last(t: torch.Tensor) -> bool:
    return t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()


def assert_only_view_written(t: torch.Tensor, before: torch.Tensor, what: str) -> None:
    """After an in-place op on ``t``: every element of ``t``'s base storage outside ``t`` still
    equals ``before``, a clone of that base (or of ``t`` itself when it is not a view) taken
    before the op."""
    base = t._base if t._base is not None else t
    assert before.shape == base.shape and before.stride() == base.stride(), "snapshot must mirror the base"
    expected = before.clone()
    offset = t.storage_offset() - base.storage_offset()
    expected.as_strided(t.size(), t.stride(), offset).copy_(t)
    assert_close(base, expected, EXACT, f"{what}: elements outside the view changed")


def storage_snapshot(t: torch.Tensor) -> torch.Tensor:
    """A clone of ``t``'s base (or of ``t``), for assert_only_view_written."""
    return (t._base if t._base is not None else t).clone()
