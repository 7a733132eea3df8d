"""Results as tables in the style of ``torch.utils.benchmark.Compare``, as Markdown, and as JSON
files that carry their machine.

A *suite result* is what ``run_suite`` returns (one suite, its rows); a *run* is what one command
measured: the machine, the ceilings, and the results of every suite it ran (``make_run``). Files
written by earlier versions hold a single suite result; ``load_run`` reads both."""

from __future__ import annotations

import datetime
import json
import math
import os

from . import machine

SCHEMA = "dlkernels-bench/2"
NOISY_SHARE = 0.1  # share of the CPUs others may take over a whole suite before the run is noisy


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


def label(row: dict) -> str:
    return f"{row['case']} [{row['note']}]" if row.get("note") else row["case"]


def case_key(suite: str, row: dict) -> str:
    """What identifies a case across runs (the same name, pass, shape and dtype)."""
    return f"{suite}: {label(row)} {fmt_shape(row['shape'])} {row['dtype']}"


def _disturbed(row: dict, result: dict) -> bool:
    """Whether other processes took more than the run's busy limit of the CPUs during the row's
    best attempt (its times are then suspect)."""
    if "disturbed" in row:
        return bool(row["disturbed"])
    limit = result["config"].get("busy_limit")
    used = row.get("cpu_used_elsewhere")
    return bool(limit is not None and used and used["others"] + used["steal"] > limit)


def _pct(row: dict) -> str:
    pct = row.get("dlkernels_pct_of_ceiling")
    if pct is None:
        return "-"
    return f"{pct:.0f}%" + ("?" if row.get("ceiling_disturbed") else "")


def columns(result: dict) -> tuple:
    unit = result["rate_unit"]
    rows = result["rows"]
    has_ref = any("reference" in r for r in rows)
    ref_name = next((r["reference"] for r in rows if "reference" in r), "")
    has_note = any(r.get("note") for r in rows)
    has_ceiling = any(r.get("ceiling") for r in rows)
    head = ["case", "shape", "dtype", "torch", "dlkernels", "torch/dlk", f"torch {unit}", f"dlk {unit}"]
    if has_note:
        head.insert(3, "note")
    if has_ref:
        head += [f"{ref_name} {unit}", f"dlk/{ref_name}"]
    if has_ceiling:
        head.append("dlk % ceiling")
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
            bad = "?" if r.get("reference_ok") is False else ""
            line += [_rate(ref_rate) + bad, share + bad]
        if has_ceiling:
            line.append(_pct(r))
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


def _alloc_text(alloc: dict) -> str:
    text = alloc["mode"]
    if alloc["mode"] == "reuse":
        text += " (glibc keeps freed blocks: no page faults from fresh outputs)"
    elif alloc["mode"] == "fresh":
        text += " (glibc defaults: out-of-place times include page faults of new outputs)"
    elif alloc["mode"] == "thp":
        text += " (THP_MEM_ALLOC_ENABLE=1: new outputs fault once per 2 MB huge page)"
    else:
        text += f" {alloc['env']}"
    return text


def ceiling_lines(ceilings: dict) -> list:
    out = []
    for name, c in ceilings.items():
        flag = " (measured under load: percentages against it are suspect)" if c.get("disturbed") else ""
        out.append(f"ceiling {name}: {c['rate']:.1f} {c['unit']} ({c['what']}){flag}")
    return out


def header_lines(result: dict) -> list:
    cfg = result["config"]
    lines = [
        f"suite {result['suite']}: {result['description']}",
        f"machine: {machine.one_line(result['machine'], cfg['device'])}",
        f"device {cfg['device']}, {cfg['threads']} threads, {cfg['rounds']} interleaved rounds x "
        f">= {cfg['min_run_time_s']} s per side, median; host allocation: {_alloc_text(cfg['alloc'])}",
        _contention(cfg),
    ]
    lines += ceiling_lines(result.get("ceilings", {}))
    return lines + ["torch/dlk > 1: dlkernels is faster"]


def missing_line(result: dict) -> str | None:
    if not result.get("missing"):
        return None
    return (
        f"missing: {', '.join(result['missing'])} (not in dlkernels.functional yet; their cases run "
        "once it has them)"
    )


def footer_lines(result: dict) -> list:
    lines = []
    if result["rows"]:
        gm = result["geomean"]
        parts = [f"all {gm['all']:.2f}"] + [f"{k} {v:.2f}" for k, v in gm.items() if k != "all"]
        lines.append(f"geometric mean torch/dlk: {', '.join(parts)}")
    lines += list(result.get("summary", []))
    disturbed = sum(_disturbed(r, result) for r in result["rows"])
    if disturbed:
        limit = 100 * (result["config"].get("busy_limit") or 0)
        lines.append(
            f"*: {disturbed} rows measured while other processes took more than {limit:.0f}% of "
            "the CPUs, even at the best of their attempts"
        )
    bad_ref = sum(r.get("reference_ok") is False for r in result["rows"])
    if bad_ref:
        lines.append(
            f"?: {bad_ref} rows whose reference was disturbed in every measurement of it (under load, "
            "rounds 2x apart, or far slower than the case itself): its rate and share are suspect"
        )
    if any(r.get("ceiling_disturbed") for r in result["rows"]):
        lines.append("% ceiling with ?: the ceiling was measured under load")
    miss = missing_line(result)
    if miss:
        lines.append(miss)
    return lines


# ---- text: torch.utils.benchmark.Compare's layout ----------------------------------------------
def _time_unit(seconds: list) -> tuple:
    """One unit per table, as Compare picks it: the largest in which the fastest time is >= 1."""
    low = min((s for s in seconds if s > 0), default=1.0)
    for name, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if low >= scale:
            return name, scale
    return "ns", 1e-9


def _num(v: float) -> str:
    return f"{v:.0f}" if v >= 1000 else f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def text(result: dict) -> str:
    """One block per op and dtype, laid out like ``torch.utils.benchmark.Compare``: a titled
    rule, a column header, a thread-count rule, indented rows, the time unit underneath."""
    unit = result["rate_unit"]
    rows = result["rows"]
    cfg = result["config"]
    out = header_lines(result) + [""]
    for op in dict.fromkeys(r.get("op", result["suite"]) for r in rows):
        for dtype in dict.fromkeys(r["dtype"] for r in rows):
            sel = [r for r in rows if r.get("op", result["suite"]) == op and r["dtype"] == dtype]
            if not sel:
                continue
            tname, scale = _time_unit([s for r in sel for s in (r["torch_s"], r["dlkernels_s"])])
            has_ceiling = any(r.get("ceiling") for r in sel)
            ref = next((r["reference"] for r in sel if r.get("reference")), None)
            head = ["torch", "dlkernels", "torch/dlk", f"dlk {unit}"]
            head += ([f"{ref} {unit}"] if ref else []) + (["% ceiling"] if has_ceiling else [])
            body = []
            for r in sel:
                spread = r.get("ratio_spread")
                ratio = f"{r['ratio']:.2f}"
                if spread and spread["max"] > spread["min"]:
                    ratio += f" ({spread['min']:.2f}-{spread['max']:.2f})"
                ratio += "*" if _disturbed(r, result) else ""
                cells = [
                    _num(r["torch_s"] / scale),
                    _num(r["dlkernels_s"] / scale),
                    ratio,
                    _rate(r["dlkernels_rate"]),
                ]
                if ref:  # the same-size reference, marked when every measurement of it was disturbed
                    cells.append(
                        _rate(r.get("reference_rate")) + ("?" if r.get("reference_ok") is False else "")
                    )
                if has_ceiling:
                    cells.append(_pct(r))
                body.append((f"{label(r)}  {fmt_shape(r['shape'])}", cells))
            lw = max(len(s) for s, _ in body) + 8
            widths = [max(len(h), *(len(c[i]) for _, c in body)) + 2 for i, h in enumerate(head)]
            header = " " * lw + "|" + "|".join(h.center(w) for h, w in zip(head, widths))
            title = f" {op}, {dtype} "
            out.append(f"[{title.center(len(header) - 2, '-')}]")
            out.append(header)
            out.append(f"{cfg['threads']} threads: ".ljust(len(header), "-"))
            for sub, cells in body:
                out.append(
                    ("      " + sub).ljust(lw)
                    + "|"
                    + "|".join(c.rjust(w - 1) + " " for c, w in zip(cells, widths))
                )
            out += ["", f"Times are in {_UNIT_NAMES[tname]} ({tname}).", ""]
    out += footer_lines(result)
    return "\n".join(out) + "\n"


_UNIT_NAMES = {"s": "seconds", "ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds"}


def markdown(result: dict) -> str:
    head, body = columns(result)
    left = _text_columns(head)
    out = [f"### {result['suite']} — {result['machine_tag']}", ""]
    out += [f"- {line}" for line in header_lines(result)[1:]]
    if body:
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


# ---- runs: several suites, one machine ---------------------------------------------------------
def make_run(results: list, *, ceilings: dict | None = None, extra_config: dict | None = None) -> dict:
    """The document ``--json`` writes: machine, versions, ceilings, load, and every suite's rows."""
    first = results[0] if results else {}
    desc = first.get("machine") or machine.describe()
    device = first.get("config", {}).get("device", "cpu")
    rows = [r for res in results for r in res["rows"]]
    disturbed = sum(bool(r.get("disturbed")) for r in rows)
    bad_refs = sum(r.get("reference_ok") is False for r in rows)
    ceilings = ceilings if ceilings is not None else first.get("ceilings", {})
    # With re-measurement off (no busy limit) rows are not judged one by one: the suites' totals
    # still say whether others took the CPUs.
    busy = any(
        (res["config"].get("cpu_used_elsewhere") or {}).get("others", 0)
        + (res["config"].get("cpu_used_elsewhere") or {}).get("steal", 0)
        > (res["config"].get("busy_limit") or NOISY_SHARE)
        for res in results
    )
    noisy = bool(disturbed or bad_refs or busy or any(c.get("disturbed") for c in ceilings.values()))
    suites = []
    for res in results:
        res = dict(res)
        res.pop("machine", None)  # once, at the top
        suites.append(res)
    return {
        "schema": SCHEMA,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine_key": machine.tag(desc, device),
        "machine": desc,
        "dlkernels": {"version": desc.get("dlkernels"), "commit": desc.get("dlkernels_commit") or "unknown"},
        "config": dict(first.get("config", {}), **(extra_config or {})),
        "ceilings": ceilings,
        # Other processes took the CPUs during some cases, or a reference or ceiling was
        # disturbed: the figures hold, but single rows may be off by more than their spread.
        "noisy": noisy,
        "disturbed_rows": disturbed,
        "missing": [{"suite": res["suite"], "op": op} for res in results for op in res.get("missing", [])],
        "suites": suites,
    }


def load_run(path: str) -> dict:
    """A run from a JSON file, whichever version wrote it (a single suite result is wrapped)."""
    with open(path) as f:
        doc = json.load(f)
    if "suites" in doc:
        return doc
    if "rows" not in doc:
        raise ValueError(f"{path}: not a dlkernels benchmark result")
    desc = doc.get("machine", {})
    key = desc.get("cpu_key") or machine.key_from_name(desc.get("cpu", ""))
    device = doc.get("config", {}).get("device", "cpu")
    if device.startswith("cuda") and desc.get("gpu"):
        key = machine.tag(desc, device)
    suite = {k: v for k, v in doc.items() if k != "machine"}
    for r in suite["rows"]:
        r.setdefault("op", doc["suite"])
    return {
        "schema": doc.get("schema", "dlkernels-bench/1"),
        "created": doc.get("created"),
        "machine_key": key,
        "machine": desc,
        "dlkernels": {"version": desc.get("dlkernels"), "commit": desc.get("dlkernels_commit") or "unknown"},
        "config": doc.get("config", {}),
        "ceilings": doc.get("ceilings", {}),
        "noisy": any(_disturbed(r, doc) for r in doc["rows"]),
        "missing": [],
        "suites": [suite],
    }


def run_rows(run: dict) -> list:
    """(suite name, row) for every case of a run."""
    return [(s["suite"], r) for s in run["suites"] for r in s["rows"]]


def write_json(doc: dict, path: str) -> str:
    d = os.path.dirname(path)
    if d:
        os.makedirs(d, exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(doc, f, indent=1, default=_json_default)
        f.write("\n")
    os.replace(path + ".tmp", path)
    return path


def _json_default(v):
    if isinstance(v, float) and math.isnan(v):
        return None
    return str(v)


def run_stem(run: dict, what: str, suffix: str = "") -> str:
    """<machine-key>/<date>-<commit>-<what><suffix>: one folder per machine, so results of one
    CPU generation never overwrite another's, and one file per run."""
    date = (run.get("created") or "")[:10] or datetime.date.today().isoformat()
    commit = (run["dlkernels"].get("commit") or "unknown")[:12]
    return os.path.join(run["machine_key"], f"{date}-{commit}-{what}{suffix}")


def save(run: dict, out_dir: str, what: str, suffix: str = "") -> tuple:
    """Writes <out_dir>/<machine-key>/<date>-<commit>-<what><suffix>.json and .md; returns both."""
    stem = os.path.join(out_dir, run_stem(run, what, suffix))
    write_json(run, stem + ".json")
    with open(stem + ".md", "w") as f:
        f.write(run_markdown(run))
    return stem + ".json", stem + ".md"


def run_markdown(run: dict) -> str:
    parts = []
    for s in run["suites"]:
        parts.append(markdown(dict(s, machine=run["machine"], machine_tag=run["machine_key"])))
    return "\n".join(parts)
