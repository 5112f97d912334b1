"""The "memcg at limit, page cache" case of `harness bench`: what the opens do to the memcg.

bench_open.c keeps a memcg at its memory.max with clean page cache to reclaim
(streaming reads of an ext2 file on the guest's ramdisk between the timed runs)
and, besides ns per op, reports what the timed opens alone changed:

  # bench_limit: op=<op> cgroup=memcg_at_limit opens=<n> events_max=<n>
                 psi_some_us=<n|na> peak_delta=<bytes> max=<bytes> round=<r>

events_max is the memcg's memory.events `max` count, psi_some_us the `some
total` of its memory.pressure (`na`: the file is absent, i.e. a kernel without
CONFIG_PSI or booted with psi=0), peak_delta how far memory.peak rose. Here
they are scaled to 10000 opens and compared per kernel.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from harness.boot import strip_timestamp

AT_LIMIT = "memcg_at_limit"
PER = 10000  # the figures are per this many opens
_LINE = re.compile(r"#\s*bench_limit:\s+(.*)$")
_REQUIRED = ("op", "opens", "events_max", "psi_some_us", "peak_delta")
PSI_ABSENT = ("PSI: not measured: the guest's memcg has no memory.pressure (a kernel "
              "without CONFIG_PSI, or booted with psi=0)")


@dataclass(frozen=True)
class LimitSample:
    op: str
    opens: int
    events_max: int
    psi_some_us: int | None  # None: no memory.pressure in this kernel
    peak_delta: int  # bytes
    max: int = 0  # the memcg's memory.max, bytes
    round: int = 1
    boot: int = 1

    def per(self, value: float) -> float:
        return value * PER / self.opens if self.opens else 0.0


def parse_limit_lines(lines: Iterable[str], boot_no: int = 1) -> list[LimitSample]:
    """The `# bench_limit:` lines of a console log; malformed ones are skipped."""
    out = []
    for line in lines:
        m = _LINE.search(strip_timestamp(line.rstrip("\r\n")))
        if not m:
            continue
        kv = dict(tok.split("=", 1) for tok in m.group(1).split() if "=" in tok)
        if any(k not in kv for k in _REQUIRED):
            continue
        try:
            psi = None if kv["psi_some_us"] == "na" else int(kv["psi_some_us"])
            out.append(LimitSample(op=kv["op"], opens=int(kv["opens"]),
                                   events_max=int(kv["events_max"]), psi_some_us=psi,
                                   peak_delta=int(kv["peak_delta"]), max=int(kv.get("max", 0)),
                                   round=int(kv.get("round", 1)), boot=boot_no))
        except ValueError:
            continue
    return out


@dataclass(frozen=True)
class LimitRow:
    kernel: str
    op: str
    n: int  # measurements (boots x rounds)
    events_max: float  # medians, per PER opens
    psi_some_us: float | None  # None: no measurement had PSI
    peak_delta: float  # bytes
    max: int


def limit_rows(samples: dict[str, list[LimitSample]], ops: Sequence[str]) -> list[LimitRow]:
    """Per kernel (in the given order) and op: medians of the per-10000 figures."""
    out = []
    for kernel, ss in samples.items():
        order = [o for o in ops if any(s.op == o for s in ss)]
        order += sorted({s.op for s in ss} - set(order))
        for op in order:
            mine = [s for s in ss if s.op == op]
            psi = [s.per(s.psi_some_us) for s in mine if s.psi_some_us is not None]
            out.append(LimitRow(
                kernel, op, len(mine),
                statistics.median(s.per(s.events_max) for s in mine),
                statistics.median(psi) if psi else None,
                statistics.median(s.per(s.peak_delta) for s in mine),
                max(s.max for s in mine)))
    return out


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
    widths = [max(len(x[i]) for x in [cols, *table]) for i in range(len(cols))]

    def line(cells: list[str]) -> str:
        return "  " + " | ".join(c.ljust(w) if i < 2 else c.rjust(w)
                                 for i, (c, w) in enumerate(zip(cells, widths, strict=True)))
    out += [line(cols), "  " + "-+-".join("-" * w for w in widths), *map(line, table)]
    if all(r.psi_some_us is None for r in rows):
        out.append(f"  {PSI_ABSENT}")
    elif any(r.psi_some_us is None for r in rows):
        out.append("  PSI n/a: " + ", ".join(sorted({r.kernel for r in rows
                                                      if r.psi_some_us is None}))
                   + " (no memory.pressure)")
    return out


def limit_json(samples: dict[str, list[LimitSample]], rows: list[LimitRow]
               ) -> dict[str, Any]:
    return {
        "per_opens": PER,
        "samples": [{"kernel": k, **s.__dict__} for k, ss in samples.items() for s in ss],
        "rows": [r.__dict__ for r in rows],
    }
