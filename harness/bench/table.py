"""The printed table (bench.txt): figures per kernel, ratios, at-limit counters, spreads."""

from __future__ import annotations

from typing import Any

from harness.bench.cases import (
    AT_LIMIT,
    MEMCG,
    NEAR,
    OP_LABELS,
    ROOT,
    ROOT_OFFLINE,
    STEADY_STATE_NOTE,
    VARIANTS,
)
from harness.bench.samples import PER, LimitSample
from harness.bench.stats import (
    Key,
    LimitRow,
    Stats,
    kernels_of,
    limit_rows,
    overhead,
    pick_baseline,
    ratio,
    rows,
)
from harness.bench.targets import Target, format_targets


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:+.1f} %"


def mode_label(mode: str, accel: str) -> str:
    if mode == "icount":
        return ("icount: QEMU TCG -icount shift=0,sleep=off -smp 1, "
                "ns = guest instructions (deterministic)")
    return f"WALL-CLOCK: QEMU {accel}, ns of host time (noisy, depends on host and load)"


_ROW_SUFFIX = {MEMCG: "", NEAR: ", near limit", AT_LIMIT: ", at limit + page cache"}


def row_label(op: str, variant: str) -> str:
    return OP_LABELS.get(op, op) + _ROW_SUFFIX.get(variant, f", {variant}")


def _short(kernel: str, base: str) -> str:
    """The ratio column's name: s/v for the series against vanilla, as before."""
    if (kernel, base) == ("series", "vanilla"):
        return "s/v"
    return f"{kernel}/{base}"


def grid(cols: list[str], table: list[list[str]], left: int = 1, indent: str = "") -> list[str]:
    """COLS over TABLE in aligned columns: the first LEFT left-aligned, the rest right."""
    widths = [max(len(r[i]) for r in [cols, *table]) for i in range(len(cols))]

    def line(cells: list[str]) -> str:
        return indent + " | ".join(c.ljust(w) if i < left else c.rjust(w)
                                   for i, (c, w) in enumerate(zip(cells, widths, strict=True)))
    return [line(cols), indent + "-+-".join("-" * w for w in widths), *map(line, table)]


def kernel_lines(kernels: dict[str, dict[str, Any]] | None) -> list[str]:
    """One line per kernel under a table's title: its release and what it was built from."""
    return [f"  {k}: {info.get('release', '?')} {info.get('describe', '')}".rstrip()
            for k, info in (kernels or {}).items()]


def format_table(stats: dict[Key, Stats], mode: str, accel: str,
                 kernels: dict[str, dict[str, Any]] | None = None,
                 targets: list[Target] | dict[str, list[Target]] | None = None,
                 header: str = "", baseline: str | None = None,
                 extra: list[str] | None = None) -> str:
    """One column per kernel (root, the row's memcg, overhead), then each other
    kernel's ratios against the baseline (vanilla)."""
    names = list(kernels) if kernels else kernels_of(stats)
    names += [k for k in kernels_of(stats) if k not in names]
    base = pick_baseline(names, baseline)
    out = [f"harness bench — {mode_label(mode, accel)}", *kernel_lines(kernels)]
    if header:
        out.append(f"  {header}")
    out += [f"  {STEADY_STATE_NOTE}", ""]
    out += _figures(stats, mode, names, base)
    out += _offline_section(stats, names)
    if extra:
        out += ["", *extra]
    out += _spread_section(stats, names)
    if isinstance(targets, dict):
        for k, ts in targets.items():
            out += ["", f"{k} against {base}:", *format_targets(ts, mode)]
    elif targets:
        out += ["", *format_targets(targets, mode)]
    return "\n".join(out)


def _figures(stats: dict[Key, Stats], mode: str, names: list[str], base: str) -> list[str]:
    """The main table: a row per (op, variant), medians and overheads per kernel, ratios."""
    unit = "ns (instructions)" if mode == "icount" else "ns WALL-CLOCK"
    others = [k for k in names if k != base]
    cols = ["op, per op: " + unit]
    for k in names:
        cols += [f"{k} root", f"{k} memcg", "overhead"]
    for k in others:
        cols += [f"{_short(k, base)} root", f"{_short(k, base)} memcg"]
    table = []
    for op, variant in rows(stats):
        cells = [row_label(op, variant)]
        for k in names:
            for cg in (ROOT, variant):
                st = stats.get((k, op, cg))
                cells.append(f"{st.median:.1f}" if st else "-")
            cells.append(pct(overhead(stats, k, op, variant)))
        for k in others:
            for cg in (ROOT, variant):
                r = ratio(stats, (k, op, cg), (base, op, cg))
                cells.append("n/a" if r is None else f"{r:.4f}")
        table.append(cells)
    return [*grid(cols, table),
            "(medians; overhead = memcg / root - 1; "
            + "; ".join(f"{_short(k, base)} = {k} / {base}" for k in others)
            + ("; " if others else "")
            + "memcg near limit: memory.max = memory.current + 4 MiB; at limit + page "
            "cache: a memcg held at its memory.max by streaming reads)"]


def _offline_section(stats: dict[Key, Stats], names: list[str]) -> list[str]:
    """--root-offline: root before any memcg existed, and online / offline."""
    offline = [op for op in OP_LABELS if any((k, op, ROOT_OFFLINE) in stats for k in names)]
    if not offline:
        return []
    out = ["", "root with kmem accounting still offline (no memcg created yet; "
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
    return out


def _spread_section(stats: dict[Key, Stats], names: list[str]) -> list[str]:
    """How far apart the repeats of every figure are."""
    out = ["", "spread over repeats: min / median / max ns per op, (max - min) / median"]
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
    return out


PSI_ABSENT = ("PSI: not measured: the guest's memcg has no memory.pressure (a kernel "
              "without CONFIG_PSI, or booted with psi=0)")


def format_limit_section(rows: list[LimitRow], labels: dict[str, str]) -> list[str]:
    """The text section under the main table; empty when the case did not run."""
    if not rows:
        return []
    limit = max(r.max for r in rows)
    out = [f"memcg at limit, page cache (memory.max {limit >> 10} KiB, kept there by "
           "streaming reads between the timed runs): what the timed opens alone did, "
           f"per {PER} opens, medians"]
    cols = ["kernel", "op", "memory.events:max", "PSI some (us)", "memory.peak rise (KiB)",
            "n"]
    table = [[r.kernel, labels.get(r.op, r.op), f"{r.events_max:.1f}",
              "n/a" if r.psi_some_us is None else f"{r.psi_some_us:.1f}",
              f"{r.peak_delta / 1024:.1f}", str(r.n)] for r in rows]
    out += grid(cols, table, left=2, indent="  ")
    if all(r.psi_some_us is None for r in rows):
        out.append(f"  {PSI_ABSENT}")
    elif any(r.psi_some_us is None for r in rows):
        out.append("  PSI n/a: " + ", ".join(sorted({r.kernel for r in rows
                                                      if r.psi_some_us is None}))
                   + " (no memory.pressure)")
    return out


def limit_section(limit: dict[str, list[LimitSample]], skipped: list[str]) -> list[str]:
    """The at-limit counters, or why the case was not measured."""
    rows_ = limit_rows(limit, list(OP_LABELS))
    if rows_:
        return format_limit_section(rows_, OP_LABELS)
    if skipped:
        return ["memcg at limit, page cache: not measured: " + "; ".join(
            dict.fromkeys(skipped))]
    return []
