"""nightly.yaml: the axes of the nightly matrix, its cells, and shards of it.

A cell is one (profile, kernel, suite) combination. Cells are ordered by id
and shard K of N takes every cell whose index i satisfies i % N == K - 1, so
for any N every cell lands in exactly one shard and a shard's content only
depends on the matrix file, not on the machine or the time it runs.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.expectations import KERNELS
from harness.profile import resolve_profile, yaml_mapping

AXES = ("profile", "kernel", "suite")
# bench compares both kernels within one run: its kernel axis collapses to this.
BOTH = "both"
KINDS = ("tests", "bench")
_NAME = re.compile(r"^[A-Za-z0-9_]+$")  # ids join names with '-'; KCIDB paths want this too


@dataclass(frozen=True)
class Suite:
    name: str
    kind: str = "tests"  # tests: build-and-test with `tests`; bench: `harness bench`
    tests: tuple[str, ...] = ()  # guest programs to run (empty: the profile's default)
    # Top-level result trees this suite reports ("guest", "kunit"); a boot
    # shows both, and each belongs to one suite's cells.
    report: tuple[str, ...] = ("guest",)
    options: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True, order=True)
class Cell:
    id: str
    profile: str
    kernel: str  # vanilla | series | both (bench)
    suite: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Matrix:
    path: str
    profiles: list[str]
    kernels: list[str]
    suites: dict[str, Suite]
    exclude: list[dict[str, list[str]]]
    retries: int = 0
    # profile name -> YAML file, for profiles outside profiles/NAME.yaml
    profile_files: dict[str, str] = field(default_factory=dict)

    def profile_ref(self, name: str) -> str:
        """What load_profile takes for this axis value: a name or a file."""
        return self.profile_files.get(name, name)

    def cells(self) -> list[Cell]:
        """Every non-excluded combination, sorted by id."""
        out = set()
        for profile in self.profiles:
            for suite in self.suites.values():
                kernels = [BOTH] if suite.kind == "bench" else self.kernels
                for kernel in kernels:
                    values = {"profile": profile, "kernel": kernel, "suite": suite.name}
                    if any(_matches(rule, values) for rule in self.exclude):
                        continue
                    out.add(Cell(f"{profile}-{kernel}-{suite.name}", profile, kernel, suite.name))
        return sorted(out)

    def digest(self) -> str:
        """Identifies the expanded matrix, so merge can refuse shards of different ones."""
        return hashlib.sha256(json.dumps([c.id for c in self.cells()]).encode()).hexdigest()[:16]


def _matches(rule: dict[str, list[str]], values: dict[str, str]) -> bool:
    # For the kernel axis, a bench cell ("both") matches a rule naming either kernel.
    def hit(axis: str, allowed: list[str]) -> bool:
        v = values[axis]
        return v in allowed or (axis == "kernel" and v == BOTH and bool(set(allowed) & set(
            KERNELS)))
    return all(hit(axis, allowed) for axis, allowed in rule.items())


def parse_shard(text: str) -> tuple[int, int]:
    """'K/N' with 1 <= K <= N."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not m:
        raise ConfigError(f"--shard {text!r}: expected K/N, e.g. 1/4")
    k, n = int(m.group(1)), int(m.group(2))
    if n < 1 or not 1 <= k <= n:
        raise ConfigError(f"--shard {text!r}: need 1 <= K <= N")
    return k, n


def shard(cells: list[Cell], k: int, n: int) -> list[Cell]:
    """Shard K of N (1-based) of CELLS, by position in id order."""
    ordered = sorted(cells)
    return [c for i, c in enumerate(ordered) if i % n == k - 1]


def execution_order(cells: list[Cell]) -> list[Cell]:
    """The order a shard runs its cells in: per profile, vanilla cells, then
    bench (which builds vanilla, then the series), then series cells, so the
    shared incremental build directory switches kernels as rarely as possible."""
    rank = {"vanilla": 0, BOTH: 1, "series": 2}
    return sorted(cells, key=lambda c: (c.profile, rank.get(c.kernel, 3), c.suite))


# --- parsing --------------------------------------------------------------------------------

def _names(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where}: expected a non-empty list of names")
    out = []
    for i, v in enumerate(value):
        if not isinstance(v, str) or not _NAME.match(v):
            raise ConfigError(f"{where}[{i}]: {v!r} is not a name (letters, digits, _)")
        out.append(v)
    return out


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: expected a list of strings")
    return tuple(value)


def _suite(name: str, spec: Any, where: str) -> Suite:
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: expected a mapping")
    known = {"kind", "tests", "report", "options"}
    for key in spec:
        if key not in known:
            raise ConfigError(f"{where}.{key}: unknown key (known: {', '.join(sorted(known))})")
    kind = spec.get("kind", "tests")
    if kind not in KINDS:
        raise ConfigError(f"{where}.kind: {kind!r} is not one of {', '.join(KINDS)}")
    options = spec.get("options") or {}
    if not isinstance(options, dict):
        raise ConfigError(f"{where}.options: expected a mapping")
    return Suite(name, kind, _strings(spec.get("tests", []), f"{where}.tests"),
                 _strings(spec.get("report", ["guest"]), f"{where}.report"), options)


def parse_matrix(text: str, filename: str) -> Matrix:
    data = yaml_mapping(text, filename)
    for key in data:
        if key not in ("axes", "suites", "exclude", "retries", "profiles"):
            raise ConfigError(f"{filename}: {key}: unknown key (known: axes, exclude, profiles, "
                              "retries, suites)")
    axes = data.get("axes") or {}
    if not isinstance(axes, dict):
        raise ConfigError(f"{filename}: axes: expected a mapping")
    for key in axes:
        if key not in AXES:
            raise ConfigError(f"{filename}: axes.{key}: unknown axis (known: {', '.join(AXES)})")
    suites_spec = data.get("suites") or {}
    if not isinstance(suites_spec, dict) or not suites_spec:
        raise ConfigError(f"{filename}: suites: expected a mapping of suite definitions")
    suites = {}
    for name, spec in suites_spec.items():
        _names([name], f"{filename}: suites")
        suites[name] = _suite(name, spec, f"{filename}: suites.{name}")

    files_spec = data.get("profiles") or {}
    if not isinstance(files_spec, dict):
        raise ConfigError(f"{filename}: profiles: expected a mapping of name: file")
    files = {}
    for name, f in files_spec.items():
        _names([name], f"{filename}: profiles")
        if not isinstance(f, str):
            raise ConfigError(f"{filename}: profiles.{name}: expected a file name")
        # Relative to the matrix file, so a matrix and its profiles travel together.
        files[name] = str((Path(filename).parent / f).resolve())
    profiles = _names(axes.get("profile", ["default"]), f"{filename}: axes.profile")
    for p in profiles:
        resolve_profile(files.get(p, p))  # an unknown profile is an error now, not at 3 a.m.
    kernels = _names(axes.get("kernel", list(KERNELS)), f"{filename}: axes.kernel")
    for k in kernels:
        if k not in KERNELS:
            raise ConfigError(f"{filename}: axes.kernel: {k!r} is not one of vanilla, series")
    suite_axis = _names(axes.get("suite", list(suites)), f"{filename}: axes.suite")
    for s in suite_axis:
        if s not in suites:
            raise ConfigError(f"{filename}: axes.suite: {s!r} is not defined under suites")

    exclude = []
    rules = data.get("exclude") or []
    if not isinstance(rules, list):
        raise ConfigError(f"{filename}: exclude: expected a list of {{axis: value(s)}}")
    for i, rule in enumerate(rules):
        where = f"{filename}: exclude[{i}]"
        if not isinstance(rule, dict) or not rule:
            raise ConfigError(f"{where}: expected a mapping of axis: value(s)")
        for axis in rule:
            if axis not in AXES:
                raise ConfigError(f"{where}.{axis}: unknown axis (known: {', '.join(AXES)})")
        exclude.append({axis: _names(v, f"{where}.{axis}") for axis, v in rule.items()})

    retries = data.get("retries", 0)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ConfigError(f"{filename}: retries: expected a non-negative integer")
    return Matrix(filename, profiles, kernels, {s: suites[s] for s in suite_axis}, exclude,
                  retries, files)


def load_matrix(path: Path) -> Matrix:
    if not path.is_file():
        raise ConfigError(f"matrix file not found: {path}")
    return parse_matrix(path.read_text(), str(path))
