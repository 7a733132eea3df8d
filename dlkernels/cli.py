"""The ``dlkernels`` command line.

dlkernels info                 versions, compiled backends, CUDA archs and devices, CPU ISA
dlkernels bench [options]      side-by-side timing against PyTorch (dlkernels.bench)
dlkernels train [args]         the training job (dlkernels.train.main)
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys

import torch

DTYPES = {
    "float32": torch.float32,
    "float": torch.float32,
    "fp32": torch.float32,
    "float64": torch.float64,
    "double": torch.float64,
    "fp64": torch.float64,
    "float16": torch.float16,
    "half": torch.float16,
    "fp16": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}


# ---- info ------------------------------------------------------------------------------------
def info() -> dict:
    import dlkernels
    from dlkernels import _build_info

    from .bench import machine

    has_kernel = getattr(torch._C, "_dispatch_has_kernel_for_dispatch_key", None)
    backends = ["CPU"]
    if _build_info.WITH_CUDA:
        registered = has_kernel is None or has_kernel("dlkernels::relu", "CUDA")
        backends.append(
            f"CUDA {_build_info.CUDA_VERSION}" + ("" if registered else " (kernels not registered!)")
        )
    devices = []
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            devices.append(f"{i}: {p.name} (sm_{p.major}{p.minor}, {p.total_memory / 2**30:.0f} GiB)")
    return {
        "dlkernels": dlkernels.__version__,
        "location": os.path.dirname(os.path.abspath(dlkernels.__file__)),
        "torch built against": _build_info.TORCH_VERSION,
        "torch running": torch.__version__,
        "compiled backends": ", ".join(backends),
        "CUDA archs": _build_info.CUDA_ARCHS or "-",
        "torch CUDA": torch.version.cuda or "- (CPU-only torch)",
        "CUDA devices": "; ".join(devices) if devices else "none visible",
        "CPU": f"{machine.cpu_model()}, {machine.cpu_count()} CPUs",
        "CPU ISA in use": dlkernels.cpu_isa()
        + (
            f" (DLKERNELS_CPU_ISA={os.environ['DLKERNELS_CPU_ISA']})"
            if os.environ.get("DLKERNELS_CPU_ISA")
            else ""
        ),
        "CPU ISAs available": ", ".join(dlkernels.cpu_isas()),
        "torch CPU capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
    }


def cmd_info(args) -> int:
    data = info()
    if args.json:
        print(json.dumps(data, indent=1))
    else:
        width = max(map(len, data))
        for key, value in data.items():
            print(f"{key + ':':<{width + 1}} {value}")
    return 0


# ---- bench -----------------------------------------------------------------------------------
def _dtypes(spec: str | None) -> list:
    if not spec:
        return []
    out = []
    for name in spec.split(","):
        name = name.strip().lower().replace("torch.", "")
        if name not in DTYPES:
            raise SystemExit(
                f"dlkernels bench: unknown dtype {name!r}; use one of {', '.join(sorted(DTYPES))}"
            )
        out.append(DTYPES[name])
    return out


def add_bench_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--suite", default="all", help="suite name(s), comma-separated, or 'all' (default); see --list"
    )
    p.add_argument(
        "--list", action="store_true", help="list the suites, their ops and which are missing, and exit"
    )
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]")
    p.add_argument("--dtype", help="comma-separated dtypes (default: the suite's, e.g. float32,float64)")
    p.add_argument("--sizes", help="suite-specific size set, e.g. '64K,1M,16M' for elementwise suites")
    p.add_argument(
        "--quick",
        action="store_true",
        help="every op family on a few shapes, float32, short timing (minutes)",
    )
    p.add_argument(
        "--smoke",
        action="store_true",
        help="tiny shapes, one short round: checks that every case runs (seconds)",
    )
    p.add_argument("--threads", type=int, help="torch threads for both sides (default: torch's)")
    p.add_argument("--rounds", type=int, help="interleaved rounds per case (default 5; quick 3; smoke 1)")
    p.add_argument(
        "--min-time", type=float, help="seconds per side per round (default 0.2; quick 0.05; smoke 0.001)"
    )
    p.add_argument("--filter", help="only cases whose name matches this regular expression")
    p.add_argument(
        "--alloc",
        choices=("reuse", "fresh", "thp"),
        default="reuse",
        help="host allocation for both sides: reuse (default; glibc keeps freed blocks, so fresh outputs "
        "do not page-fault), fresh (glibc defaults) or thp (glibc defaults, torch allocator on huge "
        "pages); the process re-executes itself to apply it",
    )
    p.add_argument("--format", choices=("text", "markdown"), default="text", help="table printed to stdout")
    p.add_argument("--json", metavar="FILE", help="write the run (machine, ceilings, every case) as JSON")
    p.add_argument(
        "--plot",
        metavar="FILE.png",
        help="bar chart of torch/dlkernels per case (needs matplotlib: dlkernels[plot])",
    )
    p.add_argument(
        "--compare",
        nargs=2,
        metavar=("OLD.json", "NEW.json"),
        help="compare two saved runs instead of measuring; exit status 1 when a case regressed",
    )
    p.add_argument(
        "--tolerance",
        type=float,
        default=None,
        help="--compare: widen each run's per-round ratio range by this fraction (default 0.05)",
    )
    p.add_argument(
        "--save",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write <out-dir>/<machine-key>/<date>-<commit>-<suites>.json and .md (default: yes, "
        "except with --quick or --smoke)",
    )
    p.add_argument("--out-dir", default=os.path.join("benchmarks", "results"), help="where --save writes")
    p.add_argument("--no-verify", action="store_true", help="skip the check that both sides agree")
    p.add_argument(
        "--busy-limit",
        type=float,
        default=0.1,
        help="re-measure a case (up to 3 times) when other processes took more than this share of the "
        "CPUs while it ran (default 0.1; negative: never)",
    )
    p.add_argument(
        "--attempts",
        type=int,
        help="measurements of a disturbed case before its least disturbed is kept (default 3; quick 2)",
    )
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar (needs tqdm; default: when stderr is a terminal)",
    )


def _bench_compare(args) -> int:
    from .bench import compare, report

    try:
        old, new = (report.load_run(path) for path in args.compare)
    except (OSError, ValueError) as e:
        raise SystemExit(f"dlkernels bench --compare: {e}") from None
    tol = compare.DEFAULT_TOLERANCE if args.tolerance is None else args.tolerance
    result = compare.compare(old, new, tol)
    print(compare.text(result, old, new), end="")
    if args.json:
        report.write_json(result, args.json)
    if not result["cases"]:
        print("dlkernels bench --compare: the two runs have no case in common", file=sys.stderr)
        return 2
    return 1 if result["regressed"] else 0


def _list_suites(bench) -> int:
    for name, suite in bench.all_suites().items():
        missing = suite.missing()
        ops = ", ".join(f"{op} (missing)" if op in missing else op for op in suite.ops)
        print(f"{name:<12} {suite.description}\n{'':<12} ops: {ops}")
    return 0


def cmd_bench(args) -> int:
    from . import bench
    from .bench.progress import Progress

    if args.compare:
        return _bench_compare(args)
    if args.list:
        return _list_suites(bench)
    if args.plot:  # fail before measuring for minutes, not after
        try:
            bench.plot._pyplot()
        except bench.plot.PlotUnavailable as e:
            raise SystemExit(f"dlkernels bench: {e}") from None
    bench.alloc.ensure(args.alloc)  # may re-execute this process with the malloc environment set
    names = list(bench.all_suites()) if args.suite == "all" else [s.strip() for s in args.suite.split(",")]
    try:
        chosen = [bench.get_suite(n) for n in names]
    except KeyError as e:
        raise SystemExit(f"dlkernels bench: {e.args[0]}") from None
    short = args.quick or args.smoke
    dtypes = _dtypes(args.dtype) or ([torch.float32] if short else [])
    rounds = args.rounds or (1 if args.smoke else 3 if args.quick else 5)
    min_time = (
        args.min_time if args.min_time is not None else (0.001 if args.smoke else 0.05 if args.quick else 0.2)
    )
    save = (not short) if args.save is None else args.save
    suffix = (
        ("-smoke" if args.smoke else "-quick" if args.quick else "")
        + (f"-{args.threads}t" if args.threads else "")
        + (f"-{args.alloc}-alloc" if args.alloc != "reuse" else "")
    )
    if args.threads:
        torch.set_num_threads(args.threads)
    busy_limit = None if args.busy_limit < 0 else args.busy_limit
    size = "smoke" if args.smoke else "quick" if args.quick else "full"
    try:
        bench.runner.check_device(args.device)
    except (RuntimeError, ValueError) as e:
        raise SystemExit(f"dlkernels bench: {e}") from None
    ceilings = bench.Ceilings(args.device, busy_limit=busy_limit, size=size)
    progress = Progress(bar=args.progress)
    results = []
    try:
        for suite in chosen:
            opts = bench.Options(
                device=args.device, dtypes=list(dtypes), sizes=args.sizes, quick=args.quick, smoke=args.smoke
            )
            progress.note(f"[{suite.name}] {suite.description}")
            missing = suite.missing()
            if missing:
                progress.note(
                    f"  missing in dlkernels.functional: {', '.join(missing)} (listed, not measured)"
                )
            try:
                result = bench.run_suite(
                    suite,
                    opts,
                    rounds=rounds,
                    min_run_time=min_time,
                    threads=args.threads,
                    pattern=args.filter,
                    verify=not args.no_verify,
                    busy_limit=busy_limit,
                    attempts=args.attempts or (2 if short else 3),
                    progress=progress,
                    ceilings=ceilings,
                )
            except (RuntimeError, ValueError) as e:
                raise SystemExit(f"dlkernels bench: {e}") from None
            results.append(result)
            if args.format == "markdown":
                print(bench.report.markdown(result))
            elif result["rows"]:
                print(bench.report.text(result))
            else:
                print(bench.report.missing_line(result) or f"suite {suite.name}: no case matched")
        again = bench.runner.remeasure_ceilings(results, ceilings)
        if again:
            progress.note(f"measured again (disturbed, or beaten by a case): ceilings {', '.join(again)}")
    finally:
        progress.close()
    run = bench.report.make_run(results, ceilings=ceilings.as_dict(), extra_config={"size": size})
    missing = [f"{m['op']} ({m['suite']})" for m in run["missing"]]
    if missing:
        print(f"missing ops, not measured: {', '.join(missing)}")
    if run["noisy"]:
        print(
            "noisy run: other processes took the CPUs during "
            f"{run['disturbed_rows']} cases, or a reference or ceiling was disturbed (see the marks)"
        )
    if args.json:
        print(f"wrote {bench.report.write_json(run, args.json)}", file=sys.stderr)
    if save and any(r["rows"] for r in results):
        what = "all" if args.suite == "all" else "-".join(names)
        for path in bench.report.save(run, args.out_dir, what, suffix):
            print(f"wrote {path}", file=sys.stderr)
    if args.plot:
        if any(r["rows"] for r in results):
            print(f"wrote {bench.plot.plot_run(run, args.plot)}", file=sys.stderr)
        else:
            print("dlkernels bench: no case ran, no plot written", file=sys.stderr)
    return 0


# ---- train -----------------------------------------------------------------------------------
def cmd_train(argv: list) -> int:
    try:
        module = importlib.import_module("dlkernels.train")
    except ModuleNotFoundError as e:
        if e.name != "dlkernels.train":
            raise
        print(
            "dlkernels train: this installation has no training module (dlkernels.train is missing).",
            file=sys.stderr,
        )
        return 2
    rc = module.main(argv)
    return rc if isinstance(rc, int) else 0


# ---- entry point -----------------------------------------------------------------------------
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dlkernels", description="Hand-written CPU and CUDA kernels as PyTorch operators."
    )
    sub = p.add_subparsers(dest="command", metavar="{info,bench,train}")
    pi = sub.add_parser("info", help="versions, compiled backends, CUDA archs and devices, CPU ISA")
    pi.add_argument("--json", action="store_true", help="print as JSON")
    pb = sub.add_parser("bench", help="side-by-side timing against PyTorch")
    add_bench_args(pb)
    sub.add_parser("train", help="the training job (arguments go to dlkernels.train)", add_help=False)
    return p


def main(argv: list | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "train":  # everything after `train` belongs to the training module
        return cmd_train(argv[1:])
    p = parser()
    args = p.parse_args(argv)
    if args.command == "info":
        return cmd_info(args)
    if args.command == "bench":
        return cmd_bench(args)
    p.print_help()
    return 0 if not argv else 2
