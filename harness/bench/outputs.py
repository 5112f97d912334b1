"""The icount benchmark's outputs: bench.json, bench.txt and bench.svg in the results directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.bench.cases import OP_LABELS, REFERENCE, STEADY_STATE_NOTE
from harness.bench.samples import PER, LimitSample, Sample
from harness.bench.stats import (
    Key,
    LimitRow,
    Stats,
    aggregate,
    kernels_of,
    limit_rows,
    overhead,
    pick_baseline,
    ratio,
    root_change,
    rows,
)
from harness.bench.svg import render_svg
from harness.bench.table import format_table, limit_section
from harness.bench.targets import Target, primary, targets_by_kernel


def to_json(samples: dict[str, list[Sample]], stats: dict[Key, Stats], targets: list[Target],
            meta: dict[str, Any], by_kernel: dict[str, list[Target]] | None = None,
            base: str = "vanilla") -> dict[str, Any]:
    return {
        **meta,
        "unit": "ns per op" + (" (= guest instructions)" if meta.get("mode") == "icount"
                               else " (wall clock)"),
        "samples": [{"kernel": k, **s.__dict__} for k, ss in samples.items() for s in ss],
        "results": [{"kernel": k, "op": op, "cgroup": cg, "n": st.n, "min": st.min,
                     "median": st.median, "max": st.max, "spread": st.spread}
                    for (k, op, cg), st in sorted(stats.items())],
        "overheads": [{"kernel": k, "op": op, "cgroup": v,
                       "overhead": overhead(stats, k, op, v)}
                      for op, v in rows(stats) for k in kernels_of(stats)],
        "baseline": base,
        "ratios": [{"kernel": k, "op": op, "cgroup": cg,
                    "ratio": ratio(stats, (k, op, cg), (base, op, cg))}
                   for (k, op, cg) in sorted(stats) if k != base],
        "root_change": {op: root_change(stats, op) for op in dict.fromkeys(o for o, _ in
                                                                             rows(stats))},
        "targets": [t.to_json() for t in targets],
        "targets_by_kernel": {k: [t.to_json() for t in ts]
                              for k, ts in (by_kernel or {}).items()},
        "steady_state": STEADY_STATE_NOTE,
        "reference_vanilla_icount": {op: {"root": r, "memcg": m}
                                     for op, (r, m) in REFERENCE.items()},
    }


def limit_json(samples: dict[str, list[LimitSample]], rows: list[LimitRow]
               ) -> dict[str, Any]:
    return {
        "per_opens": PER,
        "samples": [{"kernel": k, **s.__dict__} for k, ss in samples.items() for s in ss],
        "rows": [r.__dict__ for r in rows],
    }


def write_outputs(out_dir: Path, samples: dict[str, list[Sample]], meta: dict[str, Any],
                  kernels: dict[str, dict[str, Any]] | None = None,
                  limit: dict[str, list[LimitSample]] | None = None
                  ) -> tuple[str, list[Target]]:
    """Write bench.json, bench.txt, bench.svg; return (table text, the primary targets:
    the series' against vanilla, else the first other kernel's against the baseline)."""
    stats = aggregate(samples)
    names = list(kernels) if kernels else kernels_of(stats)
    base = pick_baseline(names + kernels_of(stats), meta.get("baseline"))
    by_kernel = targets_by_kernel(stats, base)
    targets = primary(by_kernel)
    mode, accel = meta.get("mode", "icount"), meta.get("accel", "tcg")
    header = (f"{meta.get('repeat', '?')} boots x {meta.get('rounds', '?')} rounds x "
              f"{meta.get('iters', '?')} iterations per kernel")
    extra = limit_section(limit or {}, meta.get("limit_skipped", []))
    # Two kernels: the one targets section as always; more: one per kernel.
    shown: list[Target] | dict[str, list[Target]] = (
        targets if len(by_kernel) <= 1 else by_kernel)
    text = format_table(stats, mode, accel, kernels, shown, header, base, extra)
    (out_dir / "bench.txt").write_text(text + "\n")
    (out_dir / "bench.svg").write_text(render_svg(stats, mode, accel))
    data = to_json(samples, stats, targets, {**meta, "kernels": kernels or {}}, by_kernel,
                   base)
    if limit:
        data["at_limit"] = limit_json(
            limit, limit_rows(limit, list(OP_LABELS)))
    (out_dir / "bench.json").write_text(json.dumps(data, indent=2) + "\n")
    return text, targets
