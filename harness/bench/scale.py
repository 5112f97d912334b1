"""`harness bench --scale`: guest-tests/bench_scale.c, will-it-scale style, WALL-CLOCK.

N processes on N CPUs of an SMP guest, ops/s per process; vanilla and series
booted interleaved (A B A B ...) --rounds times, and series/vanilla ratios with
their spread over the rounds. Here: its console lines, rows, table and JSON
(the boots are harness/bench/runner.py's).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.bench.cases import KERNELS, MEMCG, ROOT
from harness.bench.samples import fields
from harness.bench.stats import Stats
from harness.bench.table import grid, kernel_lines

SCALE_PROGRAM = "bench_scale"
SCALE_CASES = {
    "open1": "open+close, own file, one directory",
    "open2": "open+close, own file in own directory",
    "open3": "open+close, one shared file",
    "enoent": "failed open() (ENOENT), own name, one directory",
    "pipe": "pipe()+2 close()",
}
SCALE_CGROUPS = (MEMCG, ROOT)
SCALE_WARMUP_MS = 300  # untimed, before each case's measurement
_SCALE = re.compile(r"#\s*scale:\s+(.*)$")
_SCALE_REQUIRED = ("case", "cgroup", "procs", "ops_per_sec")
_CPUS = re.compile(r"bench_scale: cpus=(\d+)")


@dataclass(frozen=True)
class ScaleSample:
    case: str
    cgroup: str
    procs: int
    ops_per_sec: float  # per process, mean over the procs processes
    min: float = 0.0  # slowest process
    max: float = 0.0  # fastest process
    seconds: float = 0.0
    round: int = 1  # the boot round: the r-th boot of each kernel


def parse_scale_lines(lines: Iterable[str], round_no: int = 1) -> list[ScaleSample]:
    """The `# scale:` lines of a console log; malformed ones are skipped."""
    out = []
    for kv in fields(lines, _SCALE, _SCALE_REQUIRED):
        try:
            out.append(ScaleSample(
                case=kv["case"], cgroup=kv["cgroup"], procs=int(kv["procs"]),
                ops_per_sec=float(kv["ops_per_sec"]), min=float(kv.get("min", 0)),
                max=float(kv.get("max", 0)), seconds=float(kv.get("seconds", 0)),
                round=round_no))
        except ValueError:
            continue
    return out


def guest_cpus(lines: Iterable[str]) -> int | None:
    """The CPUs bench_scale saw online, None if it did not say."""
    for line in lines:
        m = _CPUS.search(line)
        if m:
            return int(m.group(1))
    return None


ScaleKey = tuple[str, str, int]  # case, cgroup, procs


@dataclass(frozen=True)
class ScaleRow:
    case: str
    cgroup: str
    procs: int
    vanilla: Stats | None  # ops/s per process over the rounds
    series: Stats | None
    ratios: tuple[float, ...]  # series / vanilla, one per round that has both

    @property
    def ratio(self) -> Stats | None:
        return Stats.of(list(self.ratios)) if self.ratios else None


def scale_rows(samples: dict[str, list[ScaleSample]]) -> list[ScaleRow]:
    """One row per case, cgroup and N, in a stable order.

    The ratio of round r pairs the r-th vanilla boot with the r-th series
    boot (booted one after the other), so slow drifts of the host cancel.
    """
    by: dict[tuple[str, ScaleKey], dict[int, float]] = {}
    for kernel, ss in samples.items():
        for s in ss:
            by.setdefault((kernel, (s.case, s.cgroup, s.procs)), {})[s.round] = s.ops_per_sec
    keys = {key for _, key in by}
    case_order = {c: i for i, c in enumerate(SCALE_CASES)}
    cg_order = {c: i for i, c in enumerate(SCALE_CGROUPS)}
    out = []
    for case, cg, n in sorted(keys, key=lambda k: (case_order.get(k[0], 99), k[0],
                                                    cg_order.get(k[1], 99), k[1], k[2])):
        v, s = by.get(("vanilla", (case, cg, n)), {}), by.get(("series", (case, cg, n)), {})
        ratios = tuple(s[r] / v[r] for r in sorted(set(v) & set(s)) if v[r] > 0)
        out.append(ScaleRow(case, cg, n, Stats.of(list(v.values())) if v else None,
                            Stats.of(list(s.values())) if s else None, ratios))
    return out


def scale_label(accel: str, smp: int) -> str:
    return (f"WALL-CLOCK: QEMU {accel or '?'} -smp {smp}, ops/s per process (host time: "
            "noisy, depends on the host and its load; only the ratios mean anything)")


def format_scale_table(rows_: list[ScaleRow], accel: str, smp: int,
                       kernels: dict[str, dict[str, Any]] | None = None,
                       header: str = "") -> str:
    out = [f"harness bench --scale — {scale_label(accel, smp)}", *kernel_lines(kernels)]
    if header:
        out.append(f"  {header}")
    out.append("  kmem accounting online throughout (the child memcg exists from the start)")
    out.append("")
    cols = ["WALL-CLOCK case", "cgroup", "N", "vanilla ops/s", "series ops/s",
            "series/vanilla", "min..max", "rounds"]
    table = []
    for r in rows_:
        st = r.ratio
        table.append([r.case, r.cgroup, str(r.procs),
                      f"{r.vanilla.median:.0f}" if r.vanilla else "-",
                      f"{r.series.median:.0f}" if r.series else "-",
                      f"{st.median:.3f}" if st else "n/a",
                      f"{st.min:.3f}..{st.max:.3f}" if st else "",
                      str(len(r.ratios))])
    out += grid(cols, table, left=2)
    out.append("(N processes, process i pinned to CPU i; ops/s: median over rounds of the mean "
               "per process; series/vanilla: median of the per-round ratios, round r = the "
               "r-th boot of each kernel, min..max over rounds)")
    out += [f"  {c}: {d}" for c, d in SCALE_CASES.items()]
    measured = [r for r in rows_ if r.ratio]
    if measured:
        below = [r for r in measured if r.ratio and r.ratio.median < 1.0]
        out += ["", f"series >= vanilla ops/s (median ratio >= 1.000): {len(measured) - len(below)}"
                f" of {len(measured)} (WALL-CLOCK: indicative, not asserted)"]
        out += [f"  below: {r.case} {r.cgroup} N={r.procs}: {r.ratio.median:.3f} "
                f"({r.ratio.min:.3f}..{r.ratio.max:.3f})" for r in below if r.ratio]
    return "\n".join(out)


def scale_json(samples: dict[str, list[ScaleSample]], rows_: list[ScaleRow],
               meta: dict[str, Any]) -> dict[str, Any]:
    def st(x: Stats | None) -> dict[str, Any] | None:
        return None if x is None else {"n": x.n, "min": x.min, "median": x.median,
                                       "max": x.max}
    return {
        **meta,
        "mode": "scale",
        "unit": "ops/s per process (wall clock)",
        "samples": [{"kernel": k, **s.__dict__} for k, ss in samples.items() for s in ss],
        "scale": [{"case": r.case, "cgroup": r.cgroup, "procs": r.procs,
                   "vanilla": st(r.vanilla), "series": st(r.series),
                   "ratio": st(r.ratio), "ratios": list(r.ratios)} for r in rows_],
    }


def host_load_note(boots: list[dict[str, Any]], host_cpus: int, smp: int) -> str:
    """How busy the host was around the boots: wall-clock figures mean
    little when other work competes with the guest's vCPU threads."""
    loads = [x for b in boots for x in b.get("host_load") or [] if x is not None]
    if not loads or not host_cpus:
        return ""
    note = (f"host: {host_cpus} CPUs, 1-min load average before/after the boots "
            f"{min(loads):.1f}..{max(loads):.1f}")
    # The guest's own vCPU threads count too (the boots run back to back):
    # busy means more runnable threads than host CPUs.
    if max(loads) > host_cpus + 0.5:
        note += (f"; BUSY HOST (load > CPUs): other work competed with the guest's {smp} "
                 "vCPU threads, so the spreads are mostly host noise")
    return note


def write_scale_outputs(out_dir: Path, samples: dict[str, list[ScaleSample]],
                        meta: dict[str, Any],
                        kernels: dict[str, dict[str, Any]] | None = None) -> str:
    rows_ = scale_rows(samples)
    header = (f"{meta.get('rounds', '?')} rounds of boots interleaved "
              f"{' '.join(meta.get('order', KERNELS))} ...; {meta.get('seconds', '?')} s per "
              f"case after {SCALE_WARMUP_MS} ms untimed")
    load = host_load_note(meta.get("boots", []), meta.get("host_cpus", 0), meta.get("smp", 0))
    if load:
        header += f"\n  {load}"
    text = format_scale_table(rows_, meta.get("accel", ""), meta.get("smp", 0), kernels,
                              header)
    (out_dir / "bench.txt").write_text(text + "\n")
    data = scale_json(samples, rows_, {**meta, "kernels": kernels or {}})
    (out_dir / "bench.json").write_text(json.dumps(data, indent=2) + "\n")
    return text
