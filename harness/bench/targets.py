"""The issue's targets: ratios of medians, each judged against its limit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.bench.cases import AT_LIMIT, MEMCG, OP_LABELS, ROOT
from harness.bench.stats import Key, Stats, kernels_of, ratio

# The targets: ratios of medians (icount instructions per op) from
# one run, each at most its limit.
ENOENT_LIMIT = 1.01  # failed open(), child memcg / root, series
OPEN_CLOSE_MEMCG_LIMIT = 1.00  # open()+close() in a child memcg, series / vanilla
OPEN_CLOSE_AT_LIMIT_LIMIT = 1.00  # open()+close() in a memcg at its limit, series / vanilla
OPEN_CLOSE_STRETCH_LIMIT = 1.03  # stretch: open()+close(), child memcg / root, series
ROOT_LIMIT = 1.003  # root (memcg online), series / vanilla, each of ROOT_OPS (v3: every op)
MEMCG_LIMIT = 1.00  # child memcg, series / vanilla, each of MEMCG_OPS
ROOT_OPS = ("open_enoent", "open_close", "pipe_close", "socket_close", "eventfd_close",
            "dup_close")
MEMCG_OPS = ("pipe_close", "socket_close", "eventfd_close")


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
