"""dlkernels.init: distributions (moments, bounds, a KS check of the truncated normal), fan rules
and gains against torch.nn.init, reproducibility from torch's generators, thread and layout
independence, errors. Device cases run the CPU kernel and, under cuda_sim, the CUDA kernel."""

import math

import pytest
import torch
from helpers import sim_scaled, torch_device

import dlkernels
from dlkernels import init

N = 1 << 20


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _stats_tol(dtype, n):
    # 6 standard errors of the estimate, plus the element type's rounding (a relative 2^-8 for
    # bfloat16, 2^-11 for half) which shifts each value by a fraction of its size.
    rounding = {torch.bfloat16: 2**-8, torch.float16: 2**-11}.get(dtype, 0.0)
    return 6 / math.sqrt(n), rounding


def test_normal_moments(device, dtype):
    (n,) = sim_scaled((N,), device)
    x = torch.empty(n, dtype=dtype, device=torch_device(device))
    assert init.normal_(x, 0.5, 2.0, generator=_gen(1)) is x
    v = x.double()
    se, rounding = _stats_tol(dtype, n)
    assert abs(v.mean().item() - 0.5) < 2.0 * se + 0.5 * rounding
    # the variance of a sample variance is 2 sigma^4 / n
    assert abs(v.var().item() / 4.0 - 1) < math.sqrt(2) * se + 4 * rounding
    # kurtosis 3 and symmetric tails: Box-Muller, not a sum of a few uniforms
    z = (v - 0.5) / 2.0
    assert abs((z**4).mean().item() - 3) < 0.05
    assert abs((z > 3).double().mean().item() - 0.0013499) < 3e-4


def test_uniform_bounds_and_moments(device, dtype):
    (n,) = sim_scaled((N,), device)
    x = torch.empty(n, dtype=dtype, device=torch_device(device))
    init.uniform_(x, -1.5, 2.5, generator=_gen(2))
    v = x.double()
    assert v.min().item() >= -1.5 and v.max().item() <= 2.5
    se, rounding = _stats_tol(dtype, n)
    assert abs(v.mean().item() - 0.5) < 4 / math.sqrt(12) * se + rounding
    assert abs(v.var().item() / (16 / 12) - 1) < 1.2 * se + 4 * rounding


def _truncnorm_cdf(x, mean, std, a, b):
    phi = lambda t: 0.5 * (1 + torch.erf((t - mean) / (std * math.sqrt(2))))  # noqa: E731
    return (phi(x) - phi(torch.tensor(a, dtype=torch.float64))) / (
        phi(torch.tensor(b, dtype=torch.float64)) - phi(torch.tensor(a, dtype=torch.float64))
    )


@pytest.mark.parametrize("mean,std,a,b", [(0.0, 1.0, -2.0, 2.0), (1.0, 0.5, 0.2, 3.0), (0.0, 1.0, 1.0, 4.0)])
def test_trunc_normal_is_the_truncated_distribution(device, dtype, mean, std, a, b):
    (n,) = sim_scaled((N,), device)
    x = torch.empty(n, dtype=dtype, device=torch_device(device))
    init.trunc_normal_(x, mean, std, a, b, generator=_gen(3))
    v = x.double().sort().values
    # the bounds as the element type holds them (0.2 is 0.19995 in half), as torch's own clamps
    lo, hi = (torch.tensor(t, dtype=dtype).item() for t in (a, b))
    assert v[0].item() >= lo and v[-1].item() <= hi
    # Kolmogorov-Smirnov: sup |F_n - F| against the truncated normal's CDF. 1.95/sqrt(n) is the
    # 0.1% critical value; the element type's rounding moves values by at most a half ulp.
    ecdf_hi = torch.arange(1, n + 1, dtype=torch.float64) / n
    cdf = _truncnorm_cdf(v, mean, std, a, b)
    d = torch.maximum(ecdf_hi - cdf, cdf - (ecdf_hi - 1 / n)).max().item()
    _, rounding = _stats_tol(dtype, n)
    assert d < 1.95 / math.sqrt(n) + 2 * rounding * max(abs(a), abs(b)) / std
    # no mass piled at the bounds, as clipping would leave (beyond what rounds there: density
    # times half an ulp, density < 2 here)
    for bound in (lo, hi):
        assert (v == bound).double().mean().item() < 1e-3 + 2 * rounding * max(1.0, abs(bound))


def test_fill(device, dtype):
    x = torch.full((7, 5), 3.0, dtype=dtype, device=torch_device(device))
    assert init.zeros_(x) is x and torch.count_nonzero(x) == 0
    assert torch.equal(init.ones_(x), torch.ones_like(x))
    assert torch.equal(
        init.constant_(x[:, 1:], -2.0)[:, 0], torch.full((7,), -2.0, dtype=dtype, device=x.device)
    )
    assert torch.equal(x[:, 0], torch.ones(7, dtype=dtype, device=x.device))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16], ids=str)
def test_cuda_kernel_draws_the_cpu_values(dtype):
    # The emulated CUDA kernel and the CPU kernel evaluate the same common/philox.h code.
    from dlkernels.testing import cuda_sim, cuda_sim_available

    if not cuda_sim_available():
        pytest.skip("no emulated CUDA kernels")
    ref = init.trunc_normal_(torch.empty(4099, dtype=torch.float64), 0.1, 0.7, -1, 1.5, generator=_gen(4))
    with cuda_sim():
        sim = init.trunc_normal_(torch.empty(4099, dtype=dtype), 0.1, 0.7, -1, 1.5, generator=_gen(4))
    tol = {torch.float64: 1e-12, torch.float32: 1e-7}.get(dtype, 1e-2)
    torch.testing.assert_close(sim.double(), ref, rtol=tol, atol=tol)


@pytest.mark.parametrize(
    "shape", [(3, 5), (16, 8, 3, 3), (4, 6, 7), (1, 2, 3, 4, 5)], ids=lambda s: "x".join(map(str, s))
)
def test_fans_and_gains_follow_torch(shape):
    t = torch.empty(shape)
    fan_in, fan_out = torch.nn.init._calculate_fan_in_and_fan_out(t)
    assert init._fan_in_and_fan_out(t) == (fan_in, fan_out)
    assert init._fan(t, "fan_in") == fan_in and init._fan(t, "fan_out") == fan_out


@pytest.mark.parametrize(
    "nonlinearity,param",
    [("linear", None), ("conv2d", None), ("sigmoid", None), ("tanh", None), ("relu", None), ("selu", None)]
    + [("leaky_relu", p) for p in (None, 0, 0.2, 3)],
)
def test_calculate_gain_matches_torch(nonlinearity, param):
    assert init.calculate_gain(nonlinearity, param) == pytest.approx(
        torch.nn.init.calculate_gain(nonlinearity, param)
    )


@pytest.mark.parametrize(
    "fn,kwargs,std",
    [
        ("kaiming_normal_", {"mode": "fan_in", "nonlinearity": "relu"}, lambda fi, fo: math.sqrt(2 / fi)),
        ("kaiming_normal_", {"a": 0.2, "mode": "fan_out"}, lambda fi, fo: math.sqrt(2 / 1.04 / fo)),
        (
            "kaiming_uniform_",
            {"mode": "fan_in", "nonlinearity": "tanh"},
            lambda fi, fo: 5 / 3 / math.sqrt(fi),
        ),
        ("xavier_normal_", {"gain": 1.5}, lambda fi, fo: 1.5 * math.sqrt(2 / (fi + fo))),
        ("xavier_uniform_", {}, lambda fi, fo: math.sqrt(2 / (fi + fo))),
        ("he_normal_", {}, lambda fi, fo: math.sqrt(2 / fi)),
    ],
)
def test_scaled_inits_have_torch_std(fn, kwargs, std):
    w = torch.empty(256, 128, 3, 3)
    getattr(init, fn)(w, **kwargs, generator=_gen(5))
    fan_in, fan_out = torch.nn.init._calculate_fan_in_and_fan_out(w)
    expected = std(fan_in, fan_out)
    assert w.mean().abs().item() < 6 * expected / math.sqrt(w.numel())
    assert w.std().item() == pytest.approx(expected, rel=6 * math.sqrt(2 / w.numel()))
    if "uniform" in fn:
        assert w.abs().max().item() <= math.sqrt(3) * expected * (1 + 1e-6)


def test_he_normal_is_kaiming_normal_fan_in_relu():
    a = init.he_normal_(torch.empty(32, 16, 3, 3), generator=_gen(6))
    b = init.kaiming_normal_(torch.empty(32, 16, 3, 3), mode="fan_in", nonlinearity="relu", generator=_gen(6))
    assert torch.equal(a, b)


def test_reproducible_from_torch_generators():
    torch.manual_seed(123)
    a = init.normal_(torch.empty(1000))
    b = init.normal_(torch.empty(1000))
    assert not torch.equal(a, b)  # each call advances the default generator
    torch.manual_seed(123)
    assert torch.equal(init.normal_(torch.empty(1000)), a)
    # generator=: its own stream, and the default generator is left alone
    state = torch.get_rng_state()
    c = init.trunc_normal_(torch.empty(1000), generator=_gen(9))
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(init.trunc_normal_(torch.empty(1000), generator=_gen(9)), c)
    assert not torch.equal(init.trunc_normal_(torch.empty(1000), generator=_gen(10)), c)


def test_bits_do_not_depend_on_threads():
    threads = torch.get_num_threads()
    try:
        out = []
        for t in (1, 2):
            torch.set_num_threads(t)
            out.append(init.normal_(torch.empty(1 << 18 | 3), generator=_gen(7)))
        assert torch.equal(out[0], out[1])
    finally:
        torch.set_num_threads(threads)


def test_strided_tensor_holds_the_contiguous_values(any_device):
    dev = torch_device(any_device)
    ref = init.uniform_(torch.empty(6, 40, device=dev), generator=_gen(8))
    t = torch.zeros(40, 6, device=dev).t()
    init.uniform_(t, generator=_gen(8))
    assert torch.equal(t, ref)
    cl = torch.zeros(2, 3, 4, 5, device=dev).to(memory_format=torch.channels_last)
    init.uniform_(cl, generator=_gen(8))
    assert cl.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(cl.flatten(), ref.flatten()[:120])
    wide = torch.zeros(6, 80, device=dev)
    init.uniform_(wide[:, ::2], generator=_gen(8))
    assert torch.equal(wide[:, ::2], ref) and torch.count_nonzero(wide[:, 1::2]) == 0


def test_parameters_and_version_counter():
    p = torch.nn.Parameter(torch.empty(8, 4))
    version = p._version
    assert init.kaiming_uniform_(p) is p  # runs under no_grad, as torch.nn.init
    assert p.requires_grad and p._version > version
    with pytest.raises(RuntimeError, match="requires grad"):
        torch.ops.dlkernels.init_normal_(p, 0.0, 1.0, 0, 0)
    with torch.no_grad():
        torch.ops.dlkernels.init_normal_(p, 0.0, 1.0, 0, 0)


def test_empty_tensors():
    assert init.normal_(torch.empty(0, 3)).shape == (0, 3)
    with pytest.warns(UserWarning, match="zero-element"):
        init.kaiming_normal_(torch.empty(0, 3))


def test_errors_with_torch_types():
    for fn in (
        init.kaiming_normal_,
        init.kaiming_uniform_,
        init.xavier_normal_,
        init.xavier_uniform_,
        init.he_normal_,
    ):
        with pytest.raises(ValueError, match="fewer than 2 dimensions"):
            fn(torch.empty(5))
    with pytest.raises(ValueError, match="Unsupported nonlinearity"):
        init.kaiming_normal_(torch.empty(3, 3), nonlinearity="gelu")
    with pytest.raises(ValueError, match="not a valid number"):
        init.calculate_gain("leaky_relu", "x")
    with pytest.raises(ValueError, match="Mode fan_avg not supported"):
        init.kaiming_normal_(torch.empty(3, 3), mode="fan_avg")
    for fn in (torch.nn.init.trunc_normal_, init.trunc_normal_):
        with pytest.raises(RuntimeError):
            fn(torch.empty(3), a=2.0, b=-2.0)
    with pytest.raises(RuntimeError, match="from=1.0 > to=0.0"):
        init.uniform_(torch.empty(3), 1.0, 0.0)
    with pytest.raises(RuntimeError, match="std >= 0.0"):
        init.normal_(torch.empty(3), std=-1.0)
    with pytest.raises(TypeError, match="must be Tensor"):
        init.normal_([1.0, 2.0])
    for dtype in (torch.int64, torch.float16, torch.bfloat16):
        with pytest.raises(NotImplementedError, match="not implemented for"):
            init.normal_(torch.empty(3, dtype=dtype))
    with pytest.raises(RuntimeError, match="single memory location"):
        init.normal_(torch.empty(1, 3).expand(4, 3))


@pytest.mark.parametrize(
    "name",
    [
        "normal_",
        "uniform_",
        "trunc_normal_",
        "kaiming_normal_",
        "kaiming_uniform_",
        "xavier_normal_",
        "xavier_uniform_",
    ],
)
def test_generator_of_the_wrong_type_is_torchs_type_error(name):
    """torch's TypeError, naming the Tensor method it draws with; the tensor is left untouched."""
    x = torch.zeros(3, 4)
    with pytest.raises(TypeError) as ours:
        getattr(init, name)(x, generator=5)
    with pytest.raises(TypeError) as theirs:
        getattr(torch.nn.init, name)(torch.zeros(3, 4), generator=5)
    assert str(ours.value) == str(theirs.value)
    assert not x.any()


def test_raw_ops_opcheck():
    for op, args in (
        (torch.ops.dlkernels.init_normal_, (0.0, 1.0, 11, 12)),
        (torch.ops.dlkernels.init_trunc_normal_, (0.0, 1.0, -1.0, 1.0, 11, 12)),
        (torch.ops.dlkernels.init_uniform_, (0.0, 1.0, 11, 12)),
        (torch.ops.dlkernels.init_fill_, (2.0,)),
    ):
        torch.library.opcheck(op, (torch.empty(5, 7),) + args)


def test_exported():
    assert dlkernels.init is init and "init" in dlkernels.__all__
    assert set(init.__all__) <= set(dir(torch.nn.init)) | {"he_normal_"}
