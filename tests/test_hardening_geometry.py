"""Hardening: conv2d geometry with huge strides, paddings and dilations (integer overflow, sizes).

Guards against: int64 overflow in the shape arithmetic (a segfault at stride=2**31, an endless loop
at stride=2**63-1, garbled negative sizes in messages) and workspaces sized from the arguments
rather than from what the taps read (std::bad_alloc at stride=100000, a second of zero-filling at
stride=padding=16384, terabyte planes for dilation=padding=10**6). Huge but legal arguments must
give the convolution's value; impossible ones a RuntimeError that names the argument.

The cases run in a child process with a capped address space, so a crash or a hang fails the test
instead of killing the run, and any large allocation fails as a MemoryError.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import textwrap

import pytest
from helpers import fuzz_seed

# Headroom over the child's address space after import: planes and outputs of these tiny convs
# need kilobytes; a size taken from a huge stride or dilation needs gigabytes or more.
HEADROOM = 1 << 30

CHILD = textwrap.dedent(
    r"""
    import json, random, resource, sys
    import torch
    import dlkernels
    import dlkernels.functional as DF

    def vm_bytes():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024

    torch.set_num_threads(2)
    DF.conv2d(torch.randn(1, 1, 4, 4), torch.randn(1, 1, 3, 3))  # start the thread pool first
    resource.setrlimit(resource.RLIMIT_AS, (vm_bytes() + int(sys.argv[1]), resource.RLIM_INFINITY))

    def out_size(n, k, s, p, d):
        return (n + 2 * p - d * (k - 1) - 1) // s + 1

    def reference(x, w, b, stride, padding, dilation, groups):
        # Direct sum over the taps that read real pixels, in Python ints (no padded copy).
        N, C, H, W = x.shape
        K, Cg, R, S = w.shape
        P = out_size(H, R, stride[0], padding[0], dilation[0])
        Q = out_size(W, S, stride[1], padding[1], dilation[1])
        Kg = K // groups
        y = torch.zeros(N, K, P, Q, dtype=torch.float64)
        if b is not None:
            y += b.double()[None, :, None, None]
        xd, wd = x.double(), w.double()
        for p in range(P):
            for r in range(R):
                ih = p * stride[0] - padding[0] + r * dilation[0]
                if not 0 <= ih < H:
                    continue
                for q in range(Q):
                    for s in range(S):
                        iw = q * stride[1] - padding[1] + s * dilation[1]
                        if not 0 <= iw < W:
                            continue
                        for g in range(groups):
                            ks = slice(g * Kg, (g + 1) * Kg)
                            xs = xd[:, g * Cg : (g + 1) * Cg, ih, iw]  # N x Cg
                            y[:, ks, p, q] += xs @ wd[ks, :, r, s].T
        return y

    results = []
    for case in json.loads(sys.stdin.read()):
        gen = torch.Generator().manual_seed(case["seed"])
        dt = getattr(torch, case["dtype"])
        x = torch.randn(case["x"], generator=gen, dtype=dt)
        w = torch.randn(case["w"], generator=gen, dtype=dt)
        b = torch.randn(case["w"][0], generator=gen, dtype=dt) if case["bias"] else None
        args = (case["stride"], case["padding"], case["dilation"], case["groups"])
        out = {"case": case}
        try:
            with dlkernels.use_cpu_isa(case["isa"]):
                xr = x.clone().requires_grad_()
                wr = w.clone().requires_grad_()
                y = DF.conv2d(xr, wr, b, *args)
                gy = torch.randn(y.shape, generator=gen, dtype=dt)
                gx, gw = torch.autograd.grad(y, (xr, wr), gy)
            # The gradients as the adjoint of the reference forward: <gy, ref(x, w)> is linear.
            xd = x.double().requires_grad_()
            wd = w.double().requires_grad_()
            # (+ 0 * ...: an output made of padding alone still has a graph to differentiate.)
            ref = reference(xd, wd, b, *args) + 0 * (xd.sum() + wd.sum())
            rgx, rgw = torch.autograd.grad(ref, (xd, wd), gy.double())
            tol = 1e-4 if dt == torch.float32 else 1e-10
            errs = [
                ((a.double() - e).abs().max().item() if a.numel() else 0.0)
                for a, e in ((y, ref), (gx, rgx), (gw, rgw))
            ]
            out["ok"] = all(e <= tol * (1 + case["w"][1] * case["w"][2] * case["w"][3]) for e in errs)
            out["errs"] = errs
        except Exception as e:  # noqa: BLE001
            out["error"] = type(e).__name__
            out["message"] = str(e).splitlines()[0][:300]
        results.append(out)
    print(json.dumps(results))
    """
)


def run_cases(cases, timeout=60):
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(HEADROOM)],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "OMP_NUM_THREADS": "2"},
    )
    assert proc.returncode == 0, f"child died (rc {proc.returncode}): {proc.stderr[-2000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def case(seed=0, x=(1, 1, 4, 4), w=(1, 1, 3, 3), stride=1, padding=0, dilation=1, groups=1, **kw):
    pair = lambda v: list(v) if isinstance(v, (tuple, list)) else [v, v]  # noqa: E731
    c = dict(seed=seed, x=list(x), w=list(w), stride=pair(stride), padding=pair(padding))
    c.update(dilation=pair(dilation), groups=groups, bias=True, dtype="float32", isa="auto")
    c.update(kw)
    return c


def isas():
    import dlkernels

    return list(dlkernels.cpu_isas())


LEGAL = [
    case(stride=2**31),
    case(stride=2**63 - 1),
    case(stride=100000),
    case(stride=16384, padding=16384),
    case(stride=(2**62, 3), padding=(2**61, 1)),
    case(dilation=10**6, padding=10**6),
    case(dilation=3 * 10**18, padding=3 * 10**18),
    case(
        x=(2, 4, 5, 6), w=(4, 1, 3, 2), groups=4, stride=(100003, 7), padding=(50000, 2), dilation=(49999, 3)
    ),
    case(x=(2, 4, 9, 9), w=(6, 2, 2, 3), groups=2, stride=1000, dilation=999, padding=1000),
]


@functools.cache
def legal_results():
    """Every LEGAL case on every ISA, in one child process (each start costs a torch import)."""
    return run_cases([{**c, "isa": isa} for c in LEGAL for isa in isas()])


@pytest.mark.parametrize("index", range(len(LEGAL)), ids=lambda i: str(LEGAL[i]["stride"]))
def test_huge_legal_arguments_give_the_convolution(index):
    """The fuzzer's cases: segfault (2**31), hang (2**63-1), bad_alloc (100000), slow (16384), and
    dilation/padding gaps that sized the planes in terabytes. Forward and both gradients, every ISA."""
    n = len(isas())
    for r in legal_results()[index * n : (index + 1) * n]:
        assert r.get("ok"), r


IMPOSSIBLE = [
    (dict(padding=2**62), "padding"),
    (dict(padding=(0, 2**63 - 1)), "padding"),
    (dict(padding=2**40), "output"),
    (dict(padding=2**61), "output"),
    (dict(dilation=2**62), "dilation"),
    (dict(dilation=(1, 2**63 - 1)), "dilation"),
    (dict(dilation=2**61), "Kernel size"),
]


@functools.cache
def impossible_results():
    return run_cases([case(**kw) for kw, _ in IMPOSSIBLE])


@pytest.mark.parametrize("kw,names", IMPOSSIBLE, ids=lambda v: str(v))
def test_impossible_arguments_raise_a_clear_runtime_error(kw, names):
    """torch raises RuntimeError for these (or overflows itself: dilation=2**62 gives it a 4 x 4
    output, padding=2**61 a segfault); here each names what is wrong, with no wrapped-around
    negative size in the message."""
    r = impossible_results()[[k for k, _ in IMPOSSIBLE].index(kw)]
    assert r.get("error") == "RuntimeError", r
    assert names in r["message"], r
    assert "-9223372036854775" not in r["message"] and "-46116860184273879" not in r["message"], r


def test_out_of_int64_arguments_raise_like_torch():
    """Python ints beyond int64 raise torch's binding errors (ValueError for an int, TypeError for
    a tuple element) before anything reaches C++."""
    import torch

    import dlkernels.functional as DF

    x, w = torch.randn(1, 1, 4, 4), torch.randn(1, 1, 3, 3)
    for kw in (
        dict(stride=2**63),
        dict(stride=2**64),
        dict(padding=2**63),
        dict(dilation=-(2**63) - 1),
        dict(groups=2**63),
        dict(stride=(1, 2**64)),
        dict(padding=(2**63, 0)),
    ):
        with pytest.raises(Exception) as expected:
            torch.nn.functional.conv2d(x, w, **kw)
        with pytest.raises(expected.type):
            DF.conv2d(x, w, **kw)


def random_cases(seed, count):
    """Small tensors, arguments log-uniform up to 2**62: legal ones and impossible ones."""
    import random

    rng = random.Random(seed)

    def big():
        return rng.choice(
            [1, 1, 2, 3, rng.randrange(1, 40), 2 ** rng.randrange(1, 63) + rng.randrange(-1, 2)]
        )

    cases = []
    for i in range(count):
        groups = rng.choice([1, 1, 2, 3])
        cg = rng.choice([1, 2])
        kg = rng.choice([1, 2])
        R, S = rng.randrange(1, 4), rng.randrange(1, 4)
        H, W = rng.randrange(1, 7), rng.randrange(1, 7)
        stride = [max(1, big()), max(1, big())]
        dilation = [max(1, big()), max(1, big())]
        # Padding that makes a huge dilation legal, about half of the time.
        padding = [
            rng.choice([0, rng.randrange(0, 3), (dilation[0] * (R - 1)) // 2 + rng.randrange(0, 2), big()]),
            rng.choice([0, rng.randrange(0, 3), (dilation[1] * (S - 1)) // 2 + rng.randrange(0, 2), big()]),
        ]
        padding = [min(p, 2**62) for p in padding]
        cases.append(
            case(
                seed=seed * 1000 + i,
                x=(rng.randrange(1, 3), groups * cg, H, W),
                w=(groups * kg, cg, R, S),
                stride=stride,
                padding=padding,
                dilation=dilation,
                groups=groups,
                bias=rng.random() < 0.5,
                dtype=rng.choice(["float32", "float64"]),
                isa=rng.choice(isas()),
            )
        )
    return cases


def legal_output(c):
    """The output's size by exact integer arithmetic, or None when there is none."""
    sizes = []
    for n, k, s, p, d in zip(c["x"][2:], c["w"][2:], c["stride"], c["padding"], c["dilation"]):
        span = n + 2 * p - d * (k - 1) - 1
        if p > 2**62 - 1 or n + 2 * p >= 2**63 or d * (k - 1) + 1 >= 2**63 or span < 0:
            return None
        sizes.append(span // s + 1)
    return sizes


def test_randomized_huge_arguments():
    """Seeded random small convs with huge strides, paddings and dilations (mostly legal with a
    small output, some impossible): legal ones match the direct reference (forward and gradients)
    without a large allocation; the others raise RuntimeError with a sane message."""
    checked = {"legal": 0, "impossible": 0, "too large to run": 0}
    cases = []
    for c in random_cases(seed=fuzz_seed(20240611), count=160):
        out = legal_output(c)
        if out is not None and out[0] * out[1] > 64:
            checked["too large to run"] += 1  # legal, but the reference loop would be slow
            continue
        cases.append(c)
    results = run_cases(cases, timeout=120)
    for r in results:
        c = r["case"]
        if legal_output(c) is None:
            checked["impossible"] += 1
            assert r.get("error") == "RuntimeError", r
            assert "-9223372036854775" not in r["message"], r
        else:
            checked["legal"] += 1
            assert r.get("ok"), r
    assert checked["legal"] > 50 and checked["impossible"] > 10, checked
    print(checked)
