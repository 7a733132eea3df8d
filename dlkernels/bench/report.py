"""Results as an aligned text table, as Markdown, and as JSON files that carry their machine."""

from __future__ import annotations

import json
import os

from . import machine


def fmt_time(seconds: float) -> str:
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3f} ms"
    return f"{seconds * 1e6:.1f} us"


def fmt_shape(shape) -> str:
    def dim(d: int) -> str:
        if d >= 1 << 20 and d % (1 << 20) == 0:
            return f"{d >> 20}M"
        if d >= 1 << 10 and d % (1 << 10) == 0:
            return f"{d >> 10}K"
        return str(d)

    return "x".join(dim(d) for d in shape) if shape else "()"


def _rate(v) -> str:
    return "-" if v is None else f"{v:.1f}"


def _disturbed(row: dict, result: dict) -> bool:
    """Whether other processes took more than the run's busy limit of the CPUs during the row's
    best attempt (its times are then suspect)."""
    limit = result["config"].get("busy_limit")
    used = row.get("cpu_used_elsewhere")
    return bool(limit is not None and used and used["others"] + used["steal"] > limit)


def columns(result: dict) -> tuple:
    unit = result["rate_unit"]
    rows = result["rows"]
    has_ref = any("reference" in r for r in rows)
    ref_name = next((r["reference"] for r in rows if "reference" in r), "")
    has_note = any(r.get("note") for r in rows)
    head = ["case", "shape", "dtype", "torch", "dlkernels", "torch/dlk", f"torch {unit}", f"dlk {unit}"]
    if has_note:
        head.insert(3, "note")
    if has_ref:
        head += [f"{ref_name} {unit}", f"dlk/{ref_name}"]
    body = []
    for r in rows:
        line = [
            r["case"],
            fmt_shape(r["shape"]),
            r["dtype"],
            fmt_time(r["torch_s"]),
            fmt_time(r["dlkernels_s"]),
            f"{r['ratio']:.2f}" + ("*" if _disturbed(r, result) else ""),
            _rate(r["torch_rate"]),
            _rate(r["dlkernels_rate"]),
        ]
        if has_note:
            line.insert(3, r.get("note", ""))
        if has_ref:
            ref_rate = r.get("reference_rate")
            share = (
                f"{100 * r['dlkernels_rate'] / ref_rate:.0f}%" if ref_rate and r["dlkernels_rate"] else "-"
            )
            line += [_rate(ref_rate), share]
        body.append(line)
    return head, body


def _contention(cfg: dict) -> str:
    text = f"load average at start {cfg.get('load_average_start')}"
    used = cfg.get("cpu_used_elsewhere")
    if used:
        text += (
            f"; during the run other processes used {100 * used['others']:.0f}% and the host "
            f"stole {100 * used['steal']:.0f}% of the CPUs' time"
        )
    return text


def header_lines(result: dict) -> list:
    cfg = result["config"]
    alloc = cfg["alloc"]
    alloc_txt = alloc["mode"]
    if alloc["mode"] == "reuse":
        alloc_txt += " (glibc keeps freed blocks: no page faults from fresh outputs)"
    elif alloc["mode"] == "fresh":
        alloc_txt += " (glibc defaults: out-of-place times include page faults of new outputs)"
    elif alloc["mode"] == "thp":
        alloc_txt += " (THP_MEM_ALLOC_ENABLE=1: new outputs fault once per 2 MB huge page)"
    else:
        alloc_txt += f" {alloc['env']}"
    return [
        f"suite {result['suite']}: {result['description']}",
        f"machine: {machine.one_line(result['machine'], cfg['device'])}",
        f"device {cfg['device']}, {cfg['threads']} threads, {cfg['rounds']} interleaved rounds x "
        f">= {cfg['min_run_time_s']} s per side, median; host allocation: {alloc_txt}",
        _contention(cfg),
        "torch/dlk > 1: dlkernels is faster",
    ]


def footer_lines(result: dict) -> list:
    gm = result["geomean"]
    parts = [f"all {gm['all']:.2f}"] + [f"{k} {v:.2f}" for k, v in gm.items() if k != "all"]
    lines = [f"geometric mean torch/dlk: {', '.join(parts)}"] + list(result.get("summary", []))
    disturbed = sum(_disturbed(r, result) for r in result["rows"])
    if disturbed:
        limit = 100 * result["config"]["busy_limit"]
        lines.append(
            f"*: {disturbed} rows measured while other processes took more than {limit:.0f}% of "
            "the CPUs, even at the best of their attempts"
        )
    return lines


def text(result: dict) -> str:
    head, body = columns(result)
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    left = _text_columns(head)  # numbers are right-aligned

    def line(cells):
        return "  ".join(
            str(c).ljust(w) if i in left else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    out = header_lines(result) + ["", line(head), line("-" * w for w in widths)]
    out += [line(r) for r in body]
    out += [""] + footer_lines(result)
    return "\n".join(out) + "\n"


def markdown(result: dict) -> str:
    head, body = columns(result)
    left = _text_columns(head)
    out = [f"### {result['suite']} — {result['machine_tag']}", ""]
    out += [f"- {line}" for line in header_lines(result)[1:]]
    out += [
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join(":---" if i in left else "---:" for i in range(len(head))) + "|",
    ]
    out += ["| " + " | ".join(map(str, r)) + " |" for r in body]
    out += [""] + [f"{line}  " for line in footer_lines(result)]
    if _several_sizes(result["rows"]):
        out += ["", "torch/dlk by case and size:", "", ratio_matrix(result)]
    return "\n".join(out).rstrip() + "\n"


def _text_columns(head: list) -> set:
    return {i for i, h in enumerate(head) if h in ("case", "shape", "dtype", "note")}


def _label(row: dict) -> str:
    return f"{row['case']} ({row['note']})" if row.get("note") else row["case"]


def _several_sizes(rows: list) -> bool:
    """Whether some case was measured at more than one shape (a grid then says more than rows)."""
    seen = {}
    for r in rows:
        seen.setdefault((_label(r), r["dtype"]), set()).add(tuple(r["shape"]))
    return any(len(v) > 1 for v in seen.values())


def ratio_matrix(result: dict) -> str:
    """torch/dlk as a Markdown grid, one per dtype: a row per case, a column per shape."""
    out = []
    rows = result["rows"]
    for dtype in dict.fromkeys(r["dtype"] for r in rows):
        sel = [r for r in rows if r["dtype"] == dtype]
        shapes = list(dict.fromkeys(fmt_shape(r["shape"]) for r in sel))
        out += [f"| {dtype} | " + " | ".join(shapes) + " |", "|:---|" + "---:|" * len(shapes)]
        for case in dict.fromkeys(_label(r) for r in sel):
            cells = {fmt_shape(r["shape"]): f"{r['ratio']:.2f}" for r in sel if _label(r) == case}
            out.append(f"| {case} | " + " | ".join(cells.get(s, "") for s in shapes) + " |")
        out.append("")
    return "\n".join(out)


def save(result: dict, out_dir: str, suffix: str = "") -> tuple:
    """Writes <out_dir>/<machine-tag>-<suite><suffix>.json and .md; returns both paths."""
    os.makedirs(out_dir, exist_ok=True)
    stem = os.path.join(out_dir, f"{result['machine_tag']}-{result['suite']}{suffix}")
    with open(stem + ".json.tmp", "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    os.replace(stem + ".json.tmp", stem + ".json")
    with open(stem + ".md", "w") as f:
        f.write(markdown(result))
    return stem + ".json", stem + ".md"
