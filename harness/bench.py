"""`harness bench`: what memcg accounting of struct file costs open() and friends.

Builds (incrementally) the base alone ("vanilla") and base + series, or any
kernels named with --kernel NAME=SERIES_FILE (harness/bench_kernels.py), boots
each --repeat times running guest-tests/bench_open.c, and compares every op in
the root cgroup, in a child memcg, near its limit, and (open()) in a memcg at
its limit full of page cache (harness/bench_limit.py), each kernel against
vanilla. The default mode runs QEMU TCG with
`-icount shift=0,sleep=off -smp 1`: guest time counts instructions (1 ns = 1
instruction), so the figures do not depend on host load and repeat to within
a fraction of a percent. `--wallclock` drops icount (KVM where it works) and
says so in every output: its figures are host- and load-dependent.

The figures are honest ones: kmem accounting is online for every case, root
included (the guest creates and keeps a child memcg before the first
measurement, as on any host with a memcg), and every case is warmed up
(steady state). `harness bench` judges the issue's four targets on them.

`--scale` is the other benchmark: guest-tests/bench_scale.c, a will-it-scale
style WALL-CLOCK run (N processes on N CPUs, ops/s per process) on an SMP
guest, vanilla and series booted interleaved (A B A B ...) --rounds times;
it reports series/vanilla ratios with their spread over the rounds.

Outputs in the results directory: bench.json, bench.txt (the printed
table), bench.svg (a hand-written bar chart; not for --scale),
console-<kernel>-<n>.log.
"""

from __future__ import annotations

import json
import os
import re
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from harness import bench_kernels, bench_limit, expectations, images, printer, run
from harness import judge as judging
from harness.bench_kernels import KernelSpec
from harness.bench_limit import AT_LIMIT, LimitSample
from harness.boot import BootOutcome, boot, strip_timestamp
from harness.errors import EXIT_INFRA, EXIT_OK, EXIT_TEST_FAILURE, ConfigError
from harness.profile import Profile, cache_dir
from harness.results import RunRecord

PROGRAM = "bench_open"
SCALE_PROGRAM = "bench_scale"
KERNELS = ("vanilla", "series")
ROOT, MEMCG, NEAR = "root", "memcg", "memcg_near_limit"
# Only with --root-offline: root before any memcg existed (kmem accounting off).
ROOT_OFFLINE = "root_offline"
OP_LABELS = {
    "open_enoent": "open() ENOENT",
    "open_close": "open()+close()",
    "pipe_close": "pipe()+2 close()",
    "socket_close": "socket()+close()",
    "eventfd_close": "eventfd()+close()",
    "dup_close": "dup()+close()",
}
VARIANT_LABELS = {MEMCG: "child memcg", NEAR: "memcg near limit",
                  AT_LIMIT: "memcg at limit, page cache"}
VARIANTS = (MEMCG, NEAR, AT_LIMIT)
# Vanilla 6.12.117 on kconfigs/base.config (JUMP_LABEL, SPARSEMEM_VMEMMAP,
# ACPI), icount, steady state with kmem accounting online: medians of
# `harness bench` (3 boots x 20000), (root, child memcg) instructions per op.
# DESIGN.md §1's figures (5187 / 5962 for ENOENT) are from an older config.
REFERENCE = {"open_enoent": (1743.0, 1986.6), "open_close": (2729.8, 2972.9),
             "pipe_close": (5420.3, 7156.4), "socket_close": (4612.7, 6045.3),
             "eventfd_close": (2763.8, 3378.1), "dup_close": (652.4, 652.5)}
# bench_open.c's untimed runs: of every op in the child memcg before the
# first measurement, and (at least) before each case.
WARMUP = 5000
STEADY_STATE_NOTE = (
    f"steady state, kmem accounting online: a child memcg exists from before the first "
    f"measurement (root figures included), every op ran {WARMUP}x untimed in it first, "
    f"and every case runs >= {WARMUP}x untimed right before it is timed")

# The targets: ratios of medians (icount instructions per op) from
# one run, each at most its limit.
ENOENT_LIMIT = 1.01  # failed open(), child memcg / root, series
OPEN_CLOSE_MEMCG_LIMIT = 1.00  # open()+close() in a child memcg, series / vanilla
OPEN_CLOSE_AT_LIMIT_LIMIT = 1.00  # open()+close() in a memcg at its limit, series / vanilla
OPEN_CLOSE_STRETCH_LIMIT = 1.03  # stretch: open()+close(), child memcg / root, series
ROOT_LIMIT = 1.005  # root (memcg online), series / vanilla, each of ROOT_OPS
MEMCG_LIMIT = 1.00  # child memcg, series / vanilla, each of MEMCG_OPS
ROOT_OPS = ("open_close", "pipe_close", "socket_close", "eventfd_close", "dup_close")
MEMCG_OPS = ("pipe_close", "socket_close", "eventfd_close")

_BENCH = re.compile(r"#\s*bench:\s+(.*)$")
_REQUIRED = ("op", "cgroup", "iters", "ns_per_op")


@dataclass(frozen=True)
class Sample:
    op: str
    cgroup: str
    iters: int
    ns_per_op: float
    round: int = 1
    boot: int = 1


def parse_lines(lines: Iterable[str], boot_no: int = 1) -> list[Sample]:
    """The `# bench:` lines of a console log; malformed ones are skipped."""
    out = []
    for line in lines:
        m = _BENCH.search(strip_timestamp(line.rstrip("\r\n")))
        if not m:
            continue
        kv = dict(tok.split("=", 1) for tok in m.group(1).split() if "=" in tok)
        if any(k not in kv for k in _REQUIRED):
            continue
        try:
            out.append(Sample(op=kv["op"], cgroup=kv["cgroup"], iters=int(kv["iters"]),
                              ns_per_op=float(kv["ns_per_op"]),
                              round=int(kv.get("round", 1)), boot=boot_no))
        except ValueError:
            continue
    return out


@dataclass(frozen=True)
class Stats:
    n: int
    min: float
    median: float
    max: float

    @classmethod
    def of(cls, values: list[float]) -> Stats:
        return cls(len(values), min(values), statistics.median(values), max(values))

    @property
    def spread(self) -> float:
        """(max - min) / median: how far apart the repeats are."""
        return (self.max - self.min) / self.median if self.median else 0.0


Key = tuple[str, str, str]  # kernel, op, cgroup


def aggregate(samples: dict[str, list[Sample]]) -> dict[Key, Stats]:
    values: dict[Key, list[float]] = {}
    for kernel, ss in samples.items():
        for s in ss:
            values.setdefault((kernel, s.op, s.cgroup), []).append(s.ns_per_op)
    return {k: Stats.of(v) for k, v in values.items()}


def kernels_of(stats: dict[Key, Stats]) -> list[str]:
    """The kernels with figures, in the order they were measured."""
    return list(dict.fromkeys(k for k, _, _ in stats))


def rows(stats: dict[Key, Stats]) -> list[tuple[str, str]]:
    """(op, variant) pairs with data, in a stable order: known ops first."""
    ops = {op for _, op, _ in stats}
    order = [o for o in OP_LABELS if o in ops] + sorted(ops - set(OP_LABELS))
    kernels = kernels_of(stats)
    return [(op, v) for op in order for v in VARIANTS
            if any((k, op, v) in stats for k in kernels)]


def overhead(stats: dict[Key, Stats], kernel: str, op: str, variant: str) -> float | None:
    """median(variant) / median(root) - 1, None if either is missing."""
    root, var = stats.get((kernel, op, ROOT)), stats.get((kernel, op, variant))
    if not root or not var or not root.median:
        return None
    return var.median / root.median - 1


def root_change(stats: dict[Key, Stats], op: str) -> float | None:
    """series root / vanilla root - 1."""
    v, s = stats.get(("vanilla", op, ROOT)), stats.get(("series", op, ROOT))
    if not v or not s or not v.median:
        return None
    return s.median / v.median - 1


def ratio(stats: dict[Key, Stats], num: Key, den: Key) -> float | None:
    """median(num) / median(den), None if either is missing."""
    a, b = stats.get(num), stats.get(den)
    if not a or not b or not b.median:
        return None
    return a.median / b.median


@dataclass
class Target:
    id: str
    description: str
    limit: float  # every ratio must be <= limit
    ratios: dict[str, float | None]  # what was measured, per op (or one entry)
    stretch: bool = False  # reported, but not one of the four lines

    @property
    def met(self) -> bool | None:
        """None: not measured (a ratio is missing)."""
        if not self.ratios or any(r is None for r in self.ratios.values()):
            return None
        return all(r <= self.limit + 1e-12 for r in self.ratios.values() if r is not None)

    @property
    def value(self) -> str:
        if len(self.ratios) == 1:
            return _ratio(next(iter(self.ratios.values())))
        return ", ".join(f"{OP_LABELS.get(op, op)} {_ratio(r)}" for op, r in self.ratios.items())

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "description": self.description, "limit": self.limit,
                "ratios": self.ratios, "met": self.met, "value": self.value,
                "stretch": self.stretch}


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:+.1f} %"


def _ratio(r: float | None) -> str:
    return "n/a" if r is None else f"{r:.4f} ({(r - 1) * 100:+.2f} %)"


def evaluate_targets(stats: dict[Key, Stats], cand: str = "series",
                     base: str = "vanilla") -> list[Target]:
    """The issue's four target lines, the at-limit one (when the run has that case),
    then the stretch figure: CAND judged against BASE."""
    def sv(op: str, cg: str) -> float | None:
        return ratio(stats, (cand, op, cg), (base, op, cg))

    out = [
        Target("enoent_memcg", "failed open() (ENOENT) in a child memcg / same in root, "
               f"{cand}", ENOENT_LIMIT,
               {"open_enoent": ratio(stats, (cand, "open_enoent", MEMCG),
                                     (cand, "open_enoent", ROOT))}),
        Target("open_close_memcg", f"open()+close() in a child memcg, {cand} / {base}",
               OPEN_CLOSE_MEMCG_LIMIT, {"open_close": sv("open_close", MEMCG)}),
        Target("root", f"root (memcg online), {cand} / {base}, each", ROOT_LIMIT,
               {op: sv(op, ROOT) for op in ROOT_OPS}),
        Target("memcg_other", "pipe(), socket(), eventfd() in a child memcg, "
               f"{cand} / {base}, each", MEMCG_LIMIT, {op: sv(op, MEMCG) for op in MEMCG_OPS}),
    ]
    # Runs of a bench_open.c older than the case have no figure to judge.
    if any(cg == AT_LIMIT for _, _, cg in stats):
        out.append(Target("open_close_at_limit", "open()+close() in a memcg at its limit "
                          f"with page cache, {cand} / {base}", OPEN_CLOSE_AT_LIMIT_LIMIT,
                          {"open_close": sv("open_close", AT_LIMIT)}))
    out.append(Target("open_close_memcg_stretch", "stretch: open()+close() in a child memcg / "
                      f"same in root, {cand}", OPEN_CLOSE_STRETCH_LIMIT,
                      {"open_close": ratio(stats, (cand, "open_close", MEMCG),
                                           (cand, "open_close", ROOT))}, stretch=True))
    return out


def targets_by_kernel(stats: dict[Key, Stats], base: str) -> dict[str, list[Target]]:
    """Every kernel but BASE judged against it by the same lines."""
    return {k: evaluate_targets(stats, k, base) for k in kernels_of(stats) if k != base}


def primary(by_kernel: dict[str, list[Target]]) -> list[Target]:
    """The targets the run is judged by: the series', else the first candidate's."""
    if "series" in by_kernel:
        return by_kernel["series"]
    return next(iter(by_kernel.values()), [])


def format_targets(targets: list[Target], mode: str) -> list[str]:
    note = ("icount: deterministic, the verdicts hold" if mode == "icount"
            else "WALL-CLOCK: indicative only, not asserted")
    out = [f"targets (medians, {note}):"]
    for t in targets:
        mark = {True: "MET    ", False: "NOT MET", None: "n/a    "}[t.met]
        out.append(f"  [{mark}] {t.description}: {t.value}; target <= {t.limit:.3f}")
    return out


# --- text ---------------------------------------------------------------------------------

def mode_label(mode: str, accel: str) -> str:
    if mode == "icount":
        return ("icount: QEMU TCG -icount shift=0,sleep=off -smp 1, "
                "ns = guest instructions (deterministic)")
    return f"WALL-CLOCK: QEMU {accel}, ns of host time (noisy, depends on host and load)"


_ROW_SUFFIX = {MEMCG: "", NEAR: ", near limit", AT_LIMIT: ", at limit + page cache"}


def _row_label(op: str, variant: str) -> str:
    return OP_LABELS.get(op, op) + _ROW_SUFFIX.get(variant, f", {variant}")


def pick_baseline(kernels: list[str], baseline: str | None = None) -> str:
    """BASELINE if measured, else vanilla, else the first kernel."""
    for k in (baseline, "vanilla"):
        if k and k in kernels:
            return k
    return kernels[0] if kernels else "vanilla"


def _short(kernel: str, base: str) -> str:
    """The ratio column's name: s/v for the series against vanilla, as before."""
    if (kernel, base) == ("series", "vanilla"):
        return "s/v"
    return f"{kernel}/{base}"


def format_table(stats: dict[Key, Stats], mode: str, accel: str,
                 kernels: dict[str, dict[str, Any]] | None = None,
                 targets: list[Target] | dict[str, list[Target]] | None = None,
                 header: str = "", baseline: str | None = None,
                 extra: list[str] | None = None) -> str:
    """One column per kernel (root, the row's memcg, overhead), then each other
    kernel's ratios against the baseline (vanilla)."""
    unit = "ns (instructions)" if mode == "icount" else "ns WALL-CLOCK"
    names = list(kernels) if kernels else kernels_of(stats)
    names += [k for k in kernels_of(stats) if k not in names]
    base = pick_baseline(names, baseline)
    others = [k for k in names if k != base]
    out = [f"harness bench — {mode_label(mode, accel)}"]
    for k, info in (kernels or {}).items():
        out.append(f"  {k}: {info.get('release', '?')} {info.get('describe', '')}".rstrip())
    if header:
        out.append(f"  {header}")
    out.append(f"  {STEADY_STATE_NOTE}")
    out.append("")
    cols = ["op, per op: " + unit]
    for k in names:
        cols += [f"{k} root", f"{k} memcg", "overhead"]
    for k in others:
        cols += [f"{_short(k, base)} root", f"{_short(k, base)} memcg"]
    table = []
    for op, variant in rows(stats):
        cells = [_row_label(op, variant)]
        for k in names:
            for cg in (ROOT, variant):
                st = stats.get((k, op, cg))
                cells.append(f"{st.median:.1f}" if st else "-")
            cells.append(_pct(overhead(stats, k, op, variant)))
        for k in others:
            for cg in (ROOT, variant):
                r = ratio(stats, (k, op, cg), (base, op, cg))
                cells.append("n/a" if r is None else f"{r:.4f}")
        table.append(cells)
    widths = [max(len(r[i]) for r in [cols, *table]) for i in range(len(cols))]

    def line(cells: list[str]) -> str:
        return " | ".join(c.ljust(w) if i == 0 else c.rjust(w)
                          for i, (c, w) in enumerate(zip(cells, widths, strict=True)))
    out += [line(cols), "-+-".join("-" * w for w in widths), *map(line, table)]
    out.append("(medians; overhead = memcg / root - 1; "
               + "; ".join(f"{_short(k, base)} = {k} / {base}" for k in others)
               + ("; " if others else "")
               + "memcg near limit: memory.max = memory.current + 4 MiB; at limit + page "
               "cache: a memcg held at its memory.max by streaming reads)")

    offline = [op for op in OP_LABELS if any((k, op, ROOT_OFFLINE) in stats for k in names)]
    if offline:
        out += ["", "root with kmem accounting still offline (no memcg created yet; "
                "--root-offline): median, and online / offline"]
        for op in offline:
            cells = []
            for k in names:
                st = stats.get((k, op, ROOT_OFFLINE))
                r = ratio(stats, (k, op, ROOT), (k, op, ROOT_OFFLINE))
                cells.append(f"{k} {st.median:.1f}" + ("" if r is None else f" ({r:.4f})")
                             if st else "")
            out.append((f"  {OP_LABELS[op]:<18}  " + "  ".join(f"{c:<28}" for c in cells))
                       .rstrip())
    if extra:
        out += ["", *extra]

    out += ["", "spread over repeats: min / median / max ns per op, (max - min) / median"]
    name_w = max((len(OP_LABELS.get(op, op)) for op, _ in rows(stats)), default=10)
    for op in dict.fromkeys(op for op, _ in rows(stats)):
        for cg in (ROOT, *VARIANTS):
            cells = []
            for k in names:
                st = stats.get((k, op, cg))
                cells.append(f"{k} {st.min:.1f} / {st.median:.1f} / {st.max:.1f} "
                             f"({st.spread * 100:.2f} %, n={st.n})" if st else "")
            if any(cells):
                out.append((f"  {OP_LABELS.get(op, op):<{name_w}}  {cg:<16}  "
                            + "  ".join(f"{c:<44}" for c in cells)).rstrip())
    if isinstance(targets, dict):
        for k, ts in targets.items():
            out += ["", f"{k} against {base}:", *format_targets(ts, mode)]
    elif targets:
        out += ["", *format_targets(targets, mode)]
    return "\n".join(out)


# --- SVG ----------------------------------------------------------------------------------

# (root, memcg) colour per kernel, in the order measured: greys for the first
# (vanilla), then blues, oranges, greens, purples.
_PALETTE = [("#b0b0b0", "#606060"), ("#9ecae1", "#2171b5"), ("#fdbe85", "#d94701"),
            ("#a1d99b", "#238b45"), ("#cbc9e2", "#6a51a3")]


def _color(kernels: list[str], kernel: str, cg: str) -> str:
    pair = _PALETTE[kernels.index(kernel) % len(_PALETTE)]
    return pair[0] if cg == ROOT else pair[1]


def render_svg(stats: dict[Key, Stats], mode: str, accel: str) -> str:
    """Small multiples: one panel per (op, variant), each on its own scale,
    since dup() and pipe() differ by an order of magnitude."""
    kernels = kernels_of(stats)
    width, label_w, bar_h, gap = 900, 170, 16, 3
    panel_h = 26 + 2 * len(kernels) * (bar_h + gap) + 14
    rws = rows(stats)
    height = 70 + panel_h * len(rws)
    plot_w = width - label_w - 150
    unit = "ns per op = guest instructions" if mode == "icount" else "ns per op, WALL-CLOCK"
    title = escape(f"memcg accounting of struct file: {' vs '.join(kernels)} — {unit}")
    sub = escape(mode_label(mode, accel))
    el = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
          f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
          f'<rect width="{width}" height="{height}" fill="white"/>',
          f'<text x="10" y="22" font-size="15" font-weight="bold">{title}</text>',
          f'<text x="10" y="40" fill="#444">{sub}</text>',
          '<text x="10" y="56" fill="#444">bars: median; whiskers: min-max over repeats'
          '</text>']
    y = 70
    for op, variant in rws:
        ovs = ", ".join(f"{k} {_pct(overhead(stats, k, op, variant))}" for k in kernels)
        el.append(f'<text x="10" y="{y + 16}" font-weight="bold">'
                  f'{escape(_row_label(op, variant))}</text>')
        el.append(f'<text x="{width - 10}" y="{y + 16}" fill="#444" text-anchor="end">'
                  f'{escape(f"memcg overhead: {ovs}")}</text>')
        bars = [(k, cg, stats.get((k, op, cg))) for k in kernels for cg in (ROOT, variant)]
        top = max((st.max for _, _, st in bars if st), default=1.0) or 1.0
        by = y + 26
        for k, cg, st in bars:
            color = _color(kernels, k, cg)
            name = f"{k} {cg.replace('_', ' ')}"
            el.append(f'<text x="{label_w}" y="{by + bar_h - 4}" text-anchor="end">'
                      f'{escape(name)}</text>')
            if st:
                w = plot_w * st.median / top
                x0, x1 = label_w + 8 + plot_w * st.min / top, label_w + 8 + plot_w * st.max / top
                mid = by + bar_h / 2
                el.append(f'<rect x="{label_w + 8}" y="{by}" width="{w:.1f}" height="{bar_h}" '
                          f'fill="{color}"><title>{escape(name)}: {st.min:.1f} / '
                          f'{st.median:.1f} / {st.max:.1f} ns</title></rect>')
                el.append(f'<line x1="{x0:.1f}" y1="{mid}" x2="{x1:.1f}" y2="{mid}" '
                          'stroke="black"/>')
                for x in (x0, x1):
                    el.append(f'<line x1="{x:.1f}" y1="{by + 3}" x2="{x:.1f}" '
                              f'y2="{by + bar_h - 3}" stroke="black"/>')
                el.append(f'<text x="{label_w + 14 + plot_w * st.max / top:.1f}" '
                          f'y="{by + bar_h - 4}">{st.median:.1f}</text>')
            by += bar_h + gap
        y += panel_h
    el.append("</svg>")
    return "\n".join(el) + "\n"


# --- JSON ---------------------------------------------------------------------------------

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


def limit_section(limit: dict[str, list[LimitSample]], skipped: list[str]) -> list[str]:
    """The at-limit counters, or why the case was not measured."""
    rows_ = bench_limit.limit_rows(limit, list(OP_LABELS))
    if rows_:
        return bench_limit.format_limit_section(rows_, OP_LABELS)
    if skipped:
        return ["memcg at limit, page cache: not measured: " + "; ".join(
            dict.fromkeys(skipped))]
    return []


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
        data["at_limit"] = bench_limit.limit_json(
            limit, bench_limit.limit_rows(limit, list(OP_LABELS)))
    (out_dir / "bench.json").write_text(json.dumps(data, indent=2) + "\n")
    return text, targets


# --- --scale: will-it-scale style, WALL-CLOCK --------------------------------------------

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
    for line in lines:
        m = _SCALE.search(strip_timestamp(line.rstrip("\r\n")))
        if not m:
            continue
        kv = dict(tok.split("=", 1) for tok in m.group(1).split() if "=" in tok)
        if any(k not in kv for k in _SCALE_REQUIRED):
            continue
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
    out = [f"harness bench --scale — {scale_label(accel, smp)}"]
    for k, info in (kernels or {}).items():
        out.append(f"  {k}: {info.get('release', '?')} {info.get('describe', '')}".rstrip())
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
    widths = [max(len(x[i]) for x in [cols, *table]) for i in range(len(cols))]

    def line(cells: list[str]) -> str:
        return " | ".join(c.ljust(w) if i < 2 else c.rjust(w)
                          for i, (c, w) in enumerate(zip(cells, widths, strict=True)))
    out += [line(cols), "-+-".join("-" * w for w in widths), *map(line, table)]
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


# --- the run ------------------------------------------------------------------------------

@dataclass
class Options:
    repeat: int = 3  # boots per kernel (icount / --wallclock)
    iters: int = 20000  # per case, passed to the guest as BENCH_ITERS
    # icount: every case again within one boot (BENCH_ROUNDS), default 1;
    # --scale: boots per kernel, interleaved A B A B ..., default 3.
    rounds: int | None = None
    wallclock: bool = False
    # auto: reuse a kernel's last image if built from the same base and series;
    # always: build (incrementally) anyway; never: reuse whatever image is there.
    build: str = "auto"
    strict: bool = False  # unmet (icount) targets exit 1
    vanilla_only: bool = False  # measure vanilla alone (developing the guest programs)
    root_offline: bool = False  # also root before any memcg exists (kmem accounting offline)
    scale: bool = False  # bench_scale: WALL-CLOCK, SMP, ops/s per process
    smp: int = 2  # --scale: CPUs of the guest, N = 1..smp processes
    seconds: float = 2.0  # --scale: measured time per case and N
    # --kernel NAME=SERIES_FILE|none, as given; empty: vanilla and the profile's series.
    kernel_args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.rounds is None:
            self.rounds = 3 if self.scale else 1

    @property
    def kernels(self) -> tuple[str, ...]:
        """The kernels' names, in the order measured."""
        if self.kernel_args:
            return tuple(a.partition("=")[0].strip() for a in self.kernel_args)
        return ("vanilla",) if self.vanilla_only else KERNELS

    def specs(self, prof: Profile) -> list[KernelSpec]:
        return bench_kernels.resolve(self.kernel_args, prof.series, self.vanilla_only)


def configure(prof: Profile, opts: Options) -> Profile:
    """The benchmark's profile made from PROF: one CPU, icount unless --wallclock;
    --scale: opts.smp CPUs, wall clock."""
    specs = opts.specs(prof)  # a bad --kernel fails before anything is built
    if opts.scale and [s.name for s in specs] not in (["vanilla"], list(KERNELS)):
        raise ConfigError("--scale compares vanilla and the series only; "
                          "--kernel works with the icount benchmark")
    if opts.repeat < 1 or opts.iters < 1 or (opts.rounds or 0) < 1:
        raise ConfigError("--repeat, --iters and --rounds must be at least 1")
    if opts.scale:
        return _configure_scale(prof, opts)
    # One vCPU: guest time is per-vCPU instructions only with one vCPU.
    qemu = replace(prof.qemu, smp=1, icount=False)
    if not opts.wallclock:
        if prof.qemu.accel == "kvm":
            raise ConfigError("icount needs TCG; use --wallclock to measure with KVM")
        qemu = replace(qemu, accel="tcg", icount=True)
    # Unknown NAME=value boot parameters end up in init's environment.
    extra = [f"BENCH_ITERS={opts.iters}", f"BENCH_ROUNDS={opts.rounds}"]
    if opts.root_offline:
        extra.append("BENCH_ROOT_OFFLINE=1")
    if not opts.wallclock:
        # Calibrating the local APIC timer busy-polls the PIT for 100 ms of guest
        # time, which under icount costs ~40 s of host time per boot; the PIT
        # as the tick (one CPU) adds ~0.05 % to the figures, the same on both kernels.
        extra.append("noapictimer")
    return replace(prof, tests=[PROGRAM], qemu=replace(qemu, cmdline=[*qemu.cmdline, *extra]))


def _configure_scale(prof: Profile, opts: Options) -> Profile:
    if opts.smp < 1 or opts.seconds <= 0:
        raise ConfigError("--smp must be at least 1 and --seconds positive")
    # Wall clock: KVM where it works (profile accel auto), else TCG, which
    # qemu.py runs multi-threaded for an SMP guest (see _multi_threaded).
    qemu = replace(prof.qemu, smp=opts.smp, icount=False,
                   cmdline=[*prof.qemu.cmdline, f"BENCH_SECONDS={opts.seconds:g}",
                            f"BENCH_WARMUP_MS={SCALE_WARMUP_MS}"])
    # Each of 2 cgroups x 5 cases x N = 1..smp takes seconds + warm-up + fork
    # and reap; three times that, for a slow TCG guest on a loaded host.
    cases = len(SCALE_CGROUPS) * len(SCALE_CASES) * opts.smp
    budget = int(cases * (opts.seconds + SCALE_WARMUP_MS / 1000 + 2) * 3) + 120
    per_test = max(prof.timeouts.per_test, budget)
    timeouts = replace(prof.timeouts, per_test=per_test,
                       run=max(prof.timeouts.run, per_test + 600))
    return replace(prof, tests=[SCALE_PROGRAM], qemu=qemu, timeouts=timeouts)


def _multi_threaded(cmd: list[str], smp: int) -> list[str]:
    """`-accel tcg` -> `-accel tcg,thread=multi` for an SMP guest: one host
    thread per vCPU, or N processes would share one host CPU. Leaves any
    other accelerator (and a TCG already given its thread option) alone."""
    out = list(cmd)
    for i, arg in enumerate(out[:-1]):
        if arg == "-accel" and out[i + 1] == "tcg" and smp > 1:
            out[i + 1] = "tcg,thread=multi"
    return out


def up_to_date(req: run.Request) -> run.KernelImage | None:
    """The kernel's kept image if it was built from the current base, series, config
    fragments and compiler: the one rule of harness/images.py. Switching the shared
    tree between kernels that touch headers like include/linux/file.h recompiles
    much of the kernel: worth avoiding, but never by measuring another config."""
    img, _ = images.find(req, *images.current(req))
    return img


def _boot_problems(outcome: BootOutcome, samples: list[Any], program: str = PROGRAM,
                   marker: str = "# bench:", kernel: str = "",
                   table: expectations.Table | None = None) -> list[str]:
    """What was wrong with one benchmark boot: the judge's verdict on PROGRAM
    (as KERNEL is declared to run it), in this report's words, and no samples."""
    verdict = judging.judge_boot(outcome, [program], table or {}, judging.Policy(
        kernels=(kernel,) if kernel else expectations.KERNELS, kunit=False))
    problems = []
    if verdict.end != "done":
        problems.append(f"guest ended with {verdict.end!r}")
    problems += [f"harness: {e}" for e in verdict.errors]
    problems += [f"kernel {s.kind}: {s.title}" for s in verdict.splats]
    if verdict.mismatches:
        problems.append("failed: " + ", ".join(
            m.leaf.name + (f" ({m.leaf.reason})" if m.leaf.reason else "")
            for m in verdict.mismatches))
    if not problems and verdict.code != EXIT_OK:
        problems += verdict.reasons
    if not samples:
        problems.append(f"no `{marker}` lines on the console")
    return problems


def _describe(info: dict[str, Any]) -> str:
    n = len(info.get("commits") or [])
    return (f"(base {str(info.get('base', ''))[:12]}" + (f" + {n} patches, head "
            f"{str(info.get('head', ''))[:12]}" if n else "") + ")")


def kernel_request(base: run.Request, spec: KernelSpec) -> run.Request:
    """SPEC's kernel: the base alone, or the base + its series under its image label."""
    if spec.vanilla:
        return replace(base, no_series=True)
    return replace(base, no_series=False, label=spec.label,
                   profile=replace(base.profile, series=str(spec.series)))


def images_series(req: run.Request) -> str:
    """The series file or mbox REQ's kernel is built from; empty for vanilla."""
    return "" if req.kernel == "vanilla" else req.profile.series


_LIMIT_SKIP = re.compile(r"\b\w+\.memcg_at_limit\s*#\s*SKIP\s*(.*)$")


def limit_skips(lines: Iterable[str]) -> list[str]:
    """Why the guest skipped the at-limit case (its KTAP skip lines), if it did."""
    return [m.group(1).strip() for line in lines
            if (m := _LIMIT_SKIP.search(strip_timestamp(line.rstrip("\r\n"))))]


def _images(base: run.Request, opts: Options, rec: RunRecord
            ) -> tuple[dict[str, run.Request], dict[str, run.KernelImage], dict[str, bool]]:
    images: dict[str, run.KernelImage] = {}
    reqs = {s.name: kernel_request(base, s) for s in opts.specs(base.profile)}
    built: dict[str, bool] = {}
    for k, req in reqs.items():
        # never: the kept image as it is (last_image warns with what changed).
        img = run.last_image(req) if opts.build == "never" else (
            up_to_date(req) if opts.build == "auto" else None)
        built[k] = img is None
        if img is None:
            img = run.build_kernel(req, rec)
            # build_kernel records stages under plain names; keep both kernels'.
            stages = rec.data["stages"]
            for name in [n for n in stages if "." not in n]:
                stages[f"{name}.{k}"] = stages.pop(name)
            rec.save()
        else:
            printer.stage(f"Reusing the {k} kernel built {img.info.get('built_at', '?')} "
                          f"({img.image}); --rebuild builds it again")
        images[k] = img
    return reqs, images, built


def run_bench(base: run.Request, opts: Options, rec: RunRecord) -> int:
    reqs, images, built = _images(base, opts, rec)
    kernels = {k: {**img.info, "describe": _describe(img.info),
                   "series_file": str(images_series(reqs[k]))}
               for k, img in images.items()}
    if opts.scale:
        return _run_scale(reqs, images, built, kernels, opts, rec)
    samples: dict[str, list[Sample]] = {k: [] for k in reqs}
    limit: dict[str, list[LimitSample]] = {k: [] for k in reqs}
    skipped: list[str] = []
    accels: set[str] = set()
    boots: list[dict[str, Any]] = []
    failures: list[str] = []
    # All kernels share one tree, hence one initramfs (cached by content).
    first = list(reqs)[-1]
    rootfs = run.prepare_rootfs(reqs[first], images[first], rec)
    for k, req in reqs.items():
        img = images[k]
        tests = run.selected_tests(req, rootfs)
        cmds, order, why = run.qemu_commands(req, img, rootfs, tests,
                                             name=f"harness:{rec.dir.name}")
        rec.meta(**{f"qemu_{k}": cmds})
        for i in range(1, opts.repeat + 1):
            printer.stage(f"Benchmark {k} {img.info.get('release', '')} boot {i}/{opts.repeat} "
                          f"({'icount' if not opts.wallclock else 'WALL-CLOCK'}, "
                          f"{'/'.join(order)}: {why})")
            log = rec.path(f"console-{k}-{i}.log")
            with req.timings.measure("boots"):
                outcome = boot(cmds, order, log, req.profile.timeouts, cache_dir(),
                               echo=printer.verbose)
            got = parse_lines(outcome.lines, i)
            samples[k] += got
            limit[k] += bench_limit.parse_limit_lines(outcome.lines, i)
            skipped += limit_skips(outcome.lines)
            accels.add(outcome.accel)
            problems = _boot_problems(outcome, got, kernel=k, table=req.declarations())
            boots.append({"kernel": k, "boot": i, "accel": outcome.accel, "end": outcome.end,
                          "seconds": round(outcome.seconds, 1), "samples": len(got),
                          "problems": problems, "console": log.name})
            rec.meta(boots=boots)
            printer.info(f"{len(got)} measurements in {outcome.seconds:.1f}s"
                         + (f"; problems: {'; '.join(problems)}" if problems else ""))
            failures += [f"{k} boot {i}: {p}" for p in problems]
    mode = "wallclock" if opts.wallclock else "icount"
    meta = {"mode": mode, "accel": "/".join(sorted(accels)), "built": built,
            "repeat": opts.repeat,
            "rounds": opts.rounds, "iters": opts.iters, "boots": boots,
            "failures": failures, "limit_skipped": skipped,
            "baseline": bench_kernels.baseline(opts.specs(base.profile)).name}
    text, targets = write_outputs(rec.dir, samples, meta, kernels, limit)
    print(text, flush=True)
    rec.data.update(bench={"targets": {t.id: t.met for t in targets},
                           "files": ["bench.json", "bench.txt", "bench.svg"]})
    printer.stage(f"Benchmark written to {rec.dir}/bench.{{txt,json,svg}}")
    if not any(samples.values()):
        return EXIT_INFRA
    if failures:
        printer.error("benchmark problems:\n    " + "\n    ".join(failures))
        return EXIT_TEST_FAILURE
    if opts.strict and mode == "icount" and any(t.met is False for t in targets):
        return EXIT_TEST_FAILURE
    return EXIT_OK


def _loadavg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


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


def _run_scale(reqs: dict[str, run.Request], images: dict[str, run.KernelImage],
               built: dict[str, bool], kernels: dict[str, dict[str, Any]], opts: Options,
               rec: RunRecord) -> int:
    samples: dict[str, list[ScaleSample]] = {k: [] for k in opts.kernels}
    accels: set[str] = set()
    boots: list[dict[str, Any]] = []
    failures: list[str] = []
    first = opts.kernels[-1]
    rootfs = run.prepare_rootfs(reqs[first], images[first], rec)
    rounds = opts.rounds or 1
    for r in range(1, rounds + 1):
        for k in opts.kernels:  # interleaved: vanilla, series, vanilla, series, ...
            req, img = reqs[k], images[k]
            tests = run.selected_tests(req, rootfs)
            # Per boot: a KVM that hung the first boot is not probed again.
            cmds, order, why = run.qemu_commands(req, img, rootfs, tests,
                                                 name=f"harness:{rec.dir.name}")
            cmds = {a: _multi_threaded(c, opts.smp) for a, c in cmds.items()}
            rec.meta(**{f"qemu_{k}": cmds})
            printer.stage(f"WALL-CLOCK scale benchmark, round {r}/{rounds}: {k} "
                          f"{img.info.get('release', '')} -smp {opts.smp} "
                          f"({'/'.join(order)}: {why})")
            log = rec.path(f"console-{k}-{r}.log")
            load = [_loadavg()]
            with req.timings.measure("boots"):
                outcome = boot(cmds, order, log, req.profile.timeouts, cache_dir(),
                               echo=printer.verbose)
            load.append(_loadavg())
            got = parse_scale_lines(outcome.lines, r)
            samples[k] += got
            accel = next((c[c.index("-accel") + 1] for a, c in cmds.items()
                          if a == outcome.accel and "-accel" in c), outcome.accel)
            accels.add(accel)
            problems = _boot_problems(outcome, got, SCALE_PROGRAM, "# scale:", k,
                                      req.declarations())
            cpus = guest_cpus(outcome.lines)
            if cpus is not None and cpus != opts.smp:
                problems.append(f"the guest brought up {cpus} CPUs, not {opts.smp}")
            boots.append({"kernel": k, "round": r, "accel": accel, "end": outcome.end,
                          "seconds": round(outcome.seconds, 1), "cpus": cpus,
                          "host_load": load,
                          "samples": len(got), "problems": problems, "console": log.name})
            rec.meta(boots=boots)
            printer.info(f"{len(got)} measurements in {outcome.seconds:.1f}s"
                         + (f"; problems: {'; '.join(problems)}" if problems else ""))
            failures += [f"{k} round {r}: {p}" for p in problems]
    if len(accels) > 1:
        failures.append(f"boots ran on different accelerators ({', '.join(sorted(accels))}): "
                        "the ratios compare unlike runs")
    meta = {"accel": "/".join(sorted(accels)), "smp": opts.smp, "seconds": opts.seconds,
            "host_cpus": os.cpu_count() or 0,
            "warmup_ms": SCALE_WARMUP_MS, "rounds": rounds, "order": list(opts.kernels),
            "built": built, "boots": boots, "failures": failures}
    text = write_scale_outputs(rec.dir, samples, meta, kernels)
    print(text, flush=True)
    rec.data.update(bench={"scale": True, "files": ["bench.json", "bench.txt"]})
    printer.stage(f"Scale benchmark written to {rec.dir}/bench.{{txt,json}}")
    if not any(samples.values()):
        return EXIT_INFRA
    if failures:
        printer.error("benchmark problems:\n    " + "\n    ".join(failures))
        return EXIT_TEST_FAILURE
    return EXIT_OK
