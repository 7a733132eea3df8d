"""Two runs side by side: per case, how torch/dlkernels moved, and whether the move is beyond
what the runs themselves vary by.

A case's noise band in one run is the range of its per-round ratios (the rounds interleave the
two sides, so each round is a fair pair), widened by ``tolerance`` (relative) because a run of
few rounds under-states its own spread. A case changed when the two bands do not overlap: it
regressed when the new band lies wholly below the old, improved when wholly above."""

from __future__ import annotations

from .report import case_key, run_rows

DEFAULT_TOLERANCE = 0.05


def _band(row: dict, tolerance: float) -> tuple:
    s = row.get("ratio_spread")
    if s and s.get("min") is not None:
        lo, hi = s["min"], s["max"]
    else:  # results written before the spread was recorded: the per-round times give it
        pairs = list(zip(row.get("torch_rounds_s") or [], row.get("dlkernels_rounds_s") or []))
        ratios = [a / b for a, b in pairs if b > 0] or [row["ratio"]]
        lo, hi = min(ratios), max(ratios)
    lo, hi = min(lo, row["ratio"]), max(hi, row["ratio"])
    return lo * (1 - tolerance), hi * (1 + tolerance)


def compare(old: dict, new: dict, tolerance: float = DEFAULT_TOLERANCE) -> dict:
    """Matches the cases of two runs by suite, name, pass, shape and dtype."""
    old_rows = {case_key(s, r): r for s, r in run_rows(old)}
    new_rows = {case_key(s, r): r for s, r in run_rows(new)}
    cases = []
    for key, n in new_rows.items():
        o = old_rows.get(key)
        if o is None:
            continue
        olo, ohi = _band(o, tolerance)
        nlo, nhi = _band(n, tolerance)
        status = "regressed" if nhi < olo else "improved" if nlo > ohi else "same"
        cases.append(
            {
                "case": key,
                "old": o["ratio"],
                "new": n["ratio"],
                "change": n["ratio"] / o["ratio"] - 1,
                "old_band": (olo, ohi),
                "new_band": (nlo, nhi),
                "status": status,
                "disturbed": bool(o.get("disturbed") or n.get("disturbed")),
            }
        )
    return {
        "cases": cases,
        "only_old": [k for k in old_rows if k not in new_rows],
        "only_new": [k for k in new_rows if k not in old_rows],
        "regressed": [c["case"] for c in cases if c["status"] == "regressed"],
        "improved": [c["case"] for c in cases if c["status"] == "improved"],
        "tolerance": tolerance,
    }


def _who(run: dict) -> str:
    d = run.get("dlkernels", {})
    return f"{run.get('machine_key', '?')}, dlkernels {d.get('commit', 'unknown')}, {run.get('created', '?')}"


def text(result: dict, old: dict, new: dict) -> str:
    """The comparison as a table in Compare's layout: torch/dlk old, new, change, verdict."""
    cases = result["cases"]
    lines = [f"old: {_who(old)}", f"new: {_who(new)}"]
    if old.get("machine_key") != new.get("machine_key"):
        lines.append("the runs are from different machines: the changes compare machines, not commits")
    lines.append("")
    if cases:
        width = max(len(c["case"]) for c in cases) + 8
        head = ["old torch/dlk", "new torch/dlk", "change", ""]
        widths = [15, 15, 9, 11]
        header = " " * width + "|" + "|".join(h.center(w) for h, w in zip(head, widths))
        lines.append(f"[{' torch/dlkernels, old vs new '.center(len(header) - 2, '-')}]")
        lines.append(header)
        for c in cases:
            mark = {"regressed": "REGRESSED", "improved": "improved", "same": ""}[c["status"]]
            if mark and c["disturbed"]:
                mark += "*"
            cells = [f"{c['old']:.2f}", f"{c['new']:.2f}", f"{100 * c['change']:+.0f}%", mark]
            lines.append(
                ("      " + c["case"]).ljust(width)
                + "|"
                + "|".join(v.rjust(w - 1) + " " for v, w in zip(cells, widths))
            )
        lines.append("")
    lines.append(
        f"{len(result['regressed'])} regressed, {len(result['improved'])} improved, "
        f"{len(cases) - len(result['regressed']) - len(result['improved'])} within the runs' spread "
        f"(per-round ratio ranges widened by {100 * result['tolerance']:.0f}%) of {len(cases)} cases in both"
    )
    if any(c["disturbed"] and c["status"] != "same" for c in cases):
        lines.append("*: measured while other processes took the CPUs in one of the runs")
    if result["only_old"]:
        lines.append(f"only in old: {len(result['only_old'])} cases")
    if result["only_new"]:
        lines.append(f"only in new: {len(result['only_new'])} cases")
    return "\n".join(lines) + "\n"
