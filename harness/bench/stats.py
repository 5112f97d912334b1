"""Samples to figures: medians and spreads per (kernel, op, cgroup), and their ratios."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from harness.bench.cases import OP_LABELS, ROOT, VARIANTS
from harness.bench.samples import LimitSample, Sample


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


def pick_baseline(kernels: list[str], baseline: str | None = None) -> str:
    """BASELINE if measured, else vanilla, else the first kernel."""
    for k in (baseline, "vanilla"):
        if k and k in kernels:
            return k
    return kernels[0] if kernels else "vanilla"


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
