"""What each guest test is declared to do on each kernel (vanilla, series).

guest-tests/expectations.yaml maps program -> test -> {vanilla, series},
each one of:
  pass                 the test passes;
  skip                 the test skips itself (a feature this kernel lacks);
  {fail: "<text>"}     the test reports `not ok` and its own output shows
                       <text> (a substring; "/.../" makes it a regex, matched
                       against each line without its indentation): a
                       declared failure names the failure it expects.
`_default` covers a program's other tests, and a program without subtests.
An optional `flaky: <why>` marks a test that can fail by chance for a known
reason (an upstream selftest racing per-CPU caches): when only such tests
disagree, the harness runs their programs again (up to three retry boots) and
reports every run.
A result that disagrees with its declaration fails the run, in either
direction: a test expected to fail on vanilla that passes is news too, and
so is a skip nobody declared, or a crash where a failure was declared.

An optional `arch: {ARCH: {vanilla: ..., series: ..., why: <reason>}}`
overrides the declaration on that target architecture (harness/target.py
names them), with the reason it differs there.
An optional `profile: {NAME: {vanilla: ..., series: ..., why: <reason>}}`
does the same for the profile a run uses (profiles/NAME.yaml): a kernel
config with a feature the default one lacks (an LSM, say).
"""

import re
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import ConfigError
from harness.profile import yaml_mapping
from harness.target import ARCHES

KERNELS = ("vanilla", "series")
OUTCOMES = ("pass", "fail", "skip")
DEFAULT = "_default"


@dataclass(frozen=True)
class Outcome:
    """One declared outcome: pass, skip, or fail showing `shows`."""

    want: str = "pass"
    shows: str = ""  # for a failure: the text (or "/regex/") its output must show
    _re: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def __str__(self) -> str:
        return f"fail with {self.shows!r}" if self.want == "fail" else self.want

    def seen_in(self, lines: list[str]) -> bool:
        """Whether LINES (a test's own output) show the declared failure; the
        indentation KTAP nesting adds is not part of it."""
        if self._re is not None:
            return any(self._re.search(line.strip()) for line in lines)
        return any(self.shows in line for line in lines)


PASS = Outcome("pass")
SKIP = Outcome("skip")


def failing(shows: str) -> Outcome:
    """A declared failure that shows SHOWS; "/.../" is a regular expression."""
    pattern = None
    if len(shows) > 2 and shows.startswith("/") and shows.endswith("/"):
        pattern = re.compile(shows[1:-1])
    return Outcome("fail", shows, pattern)


@dataclass(frozen=True)
class Expectation:
    vanilla: Outcome = PASS
    series: Outcome = PASS
    flaky: str = ""  # why it may fail by chance; "" = it may not

    def on(self, kernel: str) -> Outcome:
        return getattr(self, kernel)


Table = dict[str, dict[str, Expectation]]

_FAIL_FORM = '{fail: "<what its output shows: an errno, an OOM kill, an assertion>"}'


def _outcome(v: object, where: str) -> Outcome:
    if v in ("pass", "skip"):
        return PASS if v == "pass" else SKIP
    if v == "fail":
        raise ConfigError(f"{where}: a declared failure names the failure it expects: "
                          f"{_FAIL_FORM}")
    if isinstance(v, dict) and list(v) == ["fail"]:
        shows = v["fail"]
        if not isinstance(shows, str) or not shows.strip():
            raise ConfigError(f"{where}.fail: expected the text the failure shows (a string)")
        try:
            return failing(shows)
        except re.error as e:
            raise ConfigError(f"{where}.fail: bad regular expression {shows!r}: {e}") from None
    raise ConfigError(f"{where}: {v!r} is not one of pass, skip, {_FAIL_FORM}")


def _outcomes(exp: dict, where: str, extra: tuple[str, ...]) -> dict:
    """EXP's keys checked, its kernels' outcomes parsed (EXTRA keys are dropped)."""
    out: dict = {}
    for k, v in exp.items():
        if k in extra:
            continue
        if k == "flaky":
            if not isinstance(v, str) or not v.strip():
                raise ConfigError(f"{where}.flaky: say why it is flaky (a string)")
            out[k] = v
            continue
        if k not in KERNELS:
            raise ConfigError(f"{where}.{k}: unknown key (known: vanilla, series, flaky, "
                              f"{', '.join(extra)})")
        out[k] = _outcome(v, f"{where}.{k}")
    return out


def _override(exp: dict, where: str, key: str, current: str,
              known: tuple[str, ...] = ()) -> dict:
    """EXP with its KEY override (`arch:` or `profile:`) for CURRENT applied.

    Every override is checked, whichever applies; KNOWN, when given, lists
    the names an override may have."""
    what = {"arch": "architecture", "profile": "profile"}[key]
    overrides = exp.pop(key, {})
    if not isinstance(overrides, dict):
        raise ConfigError(f"{where}.{key}: expected a mapping of {what}s")
    for name, ov in overrides.items():
        at = f"{where}.{key}.{name}"
        if known and name not in known:
            raise ConfigError(f"{at}: unknown {what} (known: {', '.join(known)})")
        if not isinstance(ov, dict) or not isinstance(ov.get("why"), str) or not ov["why"]:
            raise ConfigError(f"{at}: expected {{vanilla: ..., series: ..., why: <reason>}}")
        _outcomes(ov, at, ("why",))
    if current in overrides:
        exp = {**exp, **{k: v for k, v in overrides[current].items() if k != "why"}}
    return exp


def parse(text: str, filename: str, arch: str = "x86_64", profile: str = "default") -> Table:
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
            exp = _override(dict(exp), where, "arch", arch, ARCHES)
            exp = _override(exp, where, "profile", profile)
            table[str(prog)][str(test)] = Expectation(
                **_outcomes(exp, where, ("arch", "profile")))
    return table


def load(path: Path, arch: str, profile: str = "default") -> Table:
    """The declarations in PATH as they apply on ARCH with PROFILE."""
    if not path.is_file():
        return {}
    return parse(path.read_text(), str(path), arch, profile)


def lookup(table: Table, program: str, test: str) -> Expectation:
    tests = table.get(program, {})
    return tests.get(test) or tests.get(DEFAULT) or Expectation()
