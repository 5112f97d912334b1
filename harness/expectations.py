"""What each guest test is declared to do on each kernel (vanilla, series).

guest-tests/expectations.yaml maps program -> test -> {vanilla, series},
each one of pass | fail | skip; `_default` covers a program's other tests.
An optional `flaky: <why>` marks a test that can fail by chance (an upstream
selftest racing per-CPU caches): when only such tests disagree, the harness
runs their programs once more and reports both runs.
A result that disagrees with its declaration fails the run, in either
direction: a test expected to fail on vanilla that passes is news too.

An optional `arch: {ARCH: {vanilla: ..., series: ..., why: <reason>}}`
overrides the declaration on that target architecture (harness/target.py
names them), with the reason it differs there.
"""

from dataclasses import dataclass
from pathlib import Path

from harness.errors import ConfigError
from harness.ktap import Status
from harness.profile import yaml_mapping
from harness.target import ARCHES

KERNELS = ("vanilla", "series")
OUTCOMES = ("pass", "fail", "skip")
DEFAULT = "_default"


@dataclass(frozen=True)
class Expectation:
    vanilla: str = "pass"
    series: str = "pass"
    flaky: str = ""  # why it may fail by chance; "" = it may not

    def on(self, kernel: str) -> str:
        return getattr(self, kernel)


Table = dict[str, dict[str, Expectation]]


def _outcomes(exp: dict, where: str, extra: tuple[str, ...]) -> None:
    for k, v in exp.items():
        if k in extra:
            continue
        if k == "flaky":
            if not isinstance(v, str) or not v.strip():
                raise ConfigError(f"{where}.flaky: say why it is flaky (a string)")
            continue
        if k not in KERNELS:
            raise ConfigError(f"{where}.{k}: unknown key (known: vanilla, series, flaky, "
                              f"{', '.join(extra)})")
        if v not in OUTCOMES:
            raise ConfigError(f"{where}.{k}: {v!r} is not one of pass, fail, skip")


def _for_arch(exp: dict, where: str, arch: str) -> dict:
    """EXP with its `arch:` override for ARCH applied (and every override checked)."""
    overrides = exp.pop("arch", {})
    if not isinstance(overrides, dict):
        raise ConfigError(f"{where}.arch: expected a mapping of architectures")
    for name, ov in overrides.items():
        at = f"{where}.arch.{name}"
        if name not in ARCHES:
            raise ConfigError(f"{at}: unknown architecture (known: {', '.join(ARCHES)})")
        if not isinstance(ov, dict) or not isinstance(ov.get("why"), str) or not ov["why"]:
            raise ConfigError(f"{at}: expected {{vanilla: ..., series: ..., why: <reason>}}")
        _outcomes(ov, at, ("why",))
    if arch in overrides:
        exp = {**exp, **{k: v for k, v in overrides[arch].items() if k != "why"}}
    return exp


def parse(text: str, filename: str, arch: str = "x86_64") -> Table:
    data = yaml_mapping(text, filename)
    table: Table = {}
    for prog, tests in data.items():
        if not isinstance(tests, dict):
            raise ConfigError(f"{filename}: {prog}: expected a mapping of tests")
        table[str(prog)] = {}
        for test, exp in tests.items():
            where = f"{filename}: {prog}.{test}"
            if not isinstance(exp, dict):
                raise ConfigError(f"{where}: expected {{vanilla: ..., series: ...}}")
            exp = _for_arch(dict(exp), where, arch)
            _outcomes(exp, where, ("arch",))
            table[str(prog)][str(test)] = Expectation(**exp)
    return table


def load(path: Path, arch: str) -> Table:
    """The declarations in PATH as they apply on ARCH."""
    if not path.is_file():
        return {}
    return parse(path.read_text(), str(path), arch)


def lookup(table: Table, program: str, test: str) -> Expectation:
    tests = table.get(program, {})
    return tests.get(test) or tests.get(DEFAULT) or Expectation()


def outcome_of(status: Status) -> str:
    if status in (Status.PASS, Status.XFAIL):
        return "pass"
    if status in (Status.SKIP, Status.NO_TESTS):
        return "skip"
    return "fail"


def matches(status: Status, expected: str) -> bool:
    got = outcome_of(status)
    # A skip (feature not in this config) never contradicts a declaration;
    # it is reported as skipped.
    return got == expected or got == "skip"
