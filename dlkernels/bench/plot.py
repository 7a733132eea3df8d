"""A bar chart of torch time / dlkernels time per case, grouped by op: log scale (2x faster and 2x
slower are the same distance from 1), a line at 1.0, the machine in the title."""

from __future__ import annotations

from .report import fmt_shape, label, run_rows


class PlotUnavailable(RuntimeError):
    pass


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise PlotUnavailable(
            "--plot needs matplotlib, which is not installed: pip install 'dlkernels[plot]' "
            "(or pip install matplotlib)"
        ) from None
    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    return plt


def plot_run(run: dict, path: str) -> str:
    plt = _pyplot()
    rows = [r for _, r in run_rows(run)]
    if not rows:
        raise ValueError("nothing to plot: the run has no cases")
    ops = list(dict.fromkeys(r.get("op", "?") for r in rows))
    rows.sort(key=lambda r: ops.index(r.get("op", "?")))  # stable: each op's cases together
    colors = plt.get_cmap("tab10")
    fig_w = max(8.0, 0.28 * len(rows) + 2)
    fig, ax = plt.subplots(figsize=(fig_w, 5.5))
    xs = list(range(len(rows)))
    ratios = [r["ratio"] for r in rows]
    ax.bar(
        xs,
        ratios,
        color=[colors(ops.index(r.get("op", "?")) % 10) for r in rows],
        hatch=None,
        edgecolor=["black" if r.get("disturbed") else "none" for r in rows],
    )
    for i, r in enumerate(rows):  # the rounds' range, where recorded
        s = r.get("ratio_spread")
        if s and s.get("max", 0) > s.get("min", 0):
            ax.plot([i, i], [s["min"], s["max"]], color="black", linewidth=0.8)
    ax.set_yscale("log")
    from matplotlib.ticker import FuncFormatter

    plain = FuncFormatter(lambda v, _: f"{v:g}")  # 0.5, 1, 2 rather than 5 x 10^-1
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(plain)
    ax.tick_params(axis="y", which="minor", labelsize=6)
    ax.axhline(1.0, color="black", linewidth=1)
    ax.set_xticks(xs)
    ax.set_xticklabels([f"{label(r)} {fmt_shape(r['shape'])}" for r in rows], rotation=90, fontsize=6)
    ax.set_ylabel("torch time / dlkernels time (> 1: dlkernels faster)", fontsize=8)
    start = 0
    for op in ops:  # op names over their groups
        n = sum(1 for r in rows if r.get("op", "?") == op)
        ax.text(start + (n - 1) / 2, 1.02, op, transform=ax.get_xaxis_transform(), ha="center", fontsize=8)
        if start:
            ax.axvline(start - 0.5, color="grey", linewidth=0.5)
        start += n
    m = run.get("machine", {})
    title = f"{m.get('cpu', '?')}, {m.get('cpus', '?')} CPUs, ISA {m.get('cpu_isa', '?')}"
    if run.get("config", {}).get("device", "cpu").startswith("cuda") and m.get("gpu"):
        title = f"{m['gpu']}; host {title}"
    title += f"\ntorch {m.get('torch', '?')}, {m.get('torch_threads', '?')} threads"
    title += f"; dlkernels {run.get('dlkernels', {}).get('commit', 'unknown')}"
    if run.get("noisy"):
        title += "; noisy run: outlined bars were measured under load"
    ax.set_title(title, fontsize=8, pad=14)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
