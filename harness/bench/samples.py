"""The guest's figures: its `# bench:` and `# bench_limit:` console lines as samples.

bench_open.c prints ns per op for every (op, cgroup) case, and for the "memcg at
limit, page cache" case also what the timed opens alone did to the memcg:

  # bench_limit: op=<op> cgroup=memcg_at_limit opens=<n> events_max=<n>
                 psi_some_us=<n|na> peak_delta=<bytes> max=<bytes> round=<r>

events_max is the memcg's memory.events `max` count, psi_some_us the `some
total` of its memory.pressure (`na`: the file is absent, i.e. a kernel without
CONFIG_PSI or booted with psi=0), peak_delta how far memory.peak rose; they are
compared scaled to PER opens (harness/bench/stats.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from harness.boot import strip_timestamp


def fields(lines: Iterable[str], marker: re.Pattern[str], required: Sequence[str]
           ) -> Iterator[dict[str, str]]:
    """The key=value fields of each console line MARKER finds (its group 1), if they
    include all of REQUIRED: the guest's figure lines, whatever their timestamps."""
    for line in lines:
        m = marker.search(strip_timestamp(line.rstrip("\r\n")))
        if not m:
            continue
        kv = dict(tok.split("=", 1) for tok in m.group(1).split() if "=" in tok)
        if all(k in kv for k in required):
            yield kv


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
    for kv in fields(lines, _BENCH, _REQUIRED):
        try:
            out.append(Sample(op=kv["op"], cgroup=kv["cgroup"], iters=int(kv["iters"]),
                              ns_per_op=float(kv["ns_per_op"]),
                              round=int(kv.get("round", 1)), boot=boot_no))
        except ValueError:
            continue
    return out


PER = 10000  # the figures are per this many opens
_LIMIT_LINE = re.compile(r"#\s*bench_limit:\s+(.*)$")
_LIMIT_REQUIRED = ("op", "opens", "events_max", "psi_some_us", "peak_delta")


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
    for kv in fields(lines, _LIMIT_LINE, _LIMIT_REQUIRED):
        try:
            psi = None if kv["psi_some_us"] == "na" else int(kv["psi_some_us"])
            out.append(LimitSample(op=kv["op"], opens=int(kv["opens"]),
                                   events_max=int(kv["events_max"]), psi_some_us=psi,
                                   peak_delta=int(kv["peak_delta"]), max=int(kv.get("max", 0)),
                                   round=int(kv.get("round", 1)), boot=boot_no))
        except ValueError:
            continue
    return out


_LIMIT_SKIP = re.compile(r"\b\w+\.memcg_at_limit\s*#\s*SKIP\s*(.*)$")


def limit_skips(lines: Iterable[str]) -> list[str]:
    """Why the guest skipped the at-limit case (its KTAP skip lines), if it did."""
    return [m.group(1).strip() for line in lines
            if (m := _LIMIT_SKIP.search(strip_timestamp(line.rstrip("\r\n"))))]
