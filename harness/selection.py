"""Which guest tests run: `PROGRAM` (all its cases) or `PROGRAM:CASE` (only that case).

A CASE is a test's name as the program reports it (`fixture.test`, or
`fixture.variant.test`; `global.test` for a TEST() without a fixture). Our
programs use the kernel's kselftest_harness.h, whose `-r FIXTURE[.VARIANT].TEST`
runs exactly one such test (and prints a KTAP plan of the selected tests only):
the guest runs `/tests/PROGRAM -r CASE ...`, nothing of ours decides what runs.

The known case names come from the programs' sources (TEST/TEST_F/...
declarations), not from running `PROGRAM -l`: a named case must be checked
before anything is locked, built or booted, when no guest program may have
been compiled yet, and for every target architecture alike (an arm64 program
does not run on this host). `-l` also prints columns that are ambiguous to
parse (a variant row with no test). The sources are what the binaries are
built from; a test hidden behind a macro of our own would be missed, and
then rejected loudly as unknown, never silently skipped.

The upstream cgroup selftests (test_kmem, test_memcontrol) have no selection
of their own: main() runs its whole `tests[]` array, and a static table in a
file we build unmodified cannot be filtered without patching it. They run
whole; naming one of their cases is an error here (harness bisect still
judges one of their cases from a whole run).
"""

import re
from pathlib import Path

from harness.errors import ConfigError

# name -> cases; () = the whole program. A dict keeps the order given.
Selection = dict[str, tuple[str, ...]]

_SPEC = re.compile(r"^([^:/\s,]+)(?:[:/]([^:/\s,]+))?$")
_COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)
_FIXTURE = re.compile(r"^\s*FIXTURE\(\s*(\w+)\s*\)", re.M)
_VARIANT = re.compile(r"^\s*FIXTURE_VARIANT_ADD\(\s*(\w+)\s*,\s*(\w+)\s*\)", re.M)
_TEST = re.compile(r"^\s*TEST(?:_SIGNAL)?\(\s*(\w+)\s*[,)]", re.M)
_TEST_F = re.compile(r"^\s*TEST_F(?:_SIGNAL|_TIMEOUT)?\(\s*(\w+)\s*,\s*(\w+)\s*[,)]", re.M)
HARNESS_MAIN = "TEST_HARNESS_MAIN"


def parse(specs: list[str]) -> Selection:
    """`prog` / `prog:case` (also `prog/case`, as results name cases) -> Selection.

    A program named whole and also with cases runs whole.
    """
    sel: Selection = {}
    for spec in specs:
        m = _SPEC.match(spec.strip())
        if not m:
            raise ConfigError(f"--tests {spec!r}: expected PROGRAM or PROGRAM:CASE")
        prog, case = m.group(1), m.group(2)
        if prog in sel and not sel[prog]:
            continue  # already whole
        if case is None:
            sel[prog] = ()
        elif case not in sel.setdefault(prog, ()):
            sel[prog] += (case,)
    return sel


def programs(specs: list[str]) -> list[str]:
    return list(parse(specs))


def case_names(source: str) -> list[str]:
    """The names a kselftest_harness.h program reports, from its C source."""
    text = _COMMENT.sub("", source)
    variants: dict[str, list[str]] = {}
    for fixture, variant in _VARIANT.findall(text):
        variants.setdefault(fixture, []).append(variant)
    tests: dict[str, list[str]] = {"global": _TEST.findall(text)}
    for fixture, test in _TEST_F.findall(text):
        tests.setdefault(fixture, []).append(test)
    # The order the program runs them in: fixture, then variant, then test.
    return [".".join(filter(None, (fixture, variant, test)))
            for fixture, names in tests.items()
            for variant in variants.get(fixture, [""])
            for test in names]


def known_cases(guest_tests: Path, prog: str) -> list[str] | None:
    """PROG's case names, or None when it cannot run single cases."""
    src = guest_tests / f"{prog}.c"
    try:
        text = src.read_text(errors="replace")
    except OSError:
        return None
    return case_names(text) if HARNESS_MAIN in text else None


def _selectable(guest_tests: Path) -> list[str]:
    return sorted(p.stem for p in guest_tests.glob("*.c")
                  if HARNESS_MAIN in p.read_text(errors="replace"))


def check(specs: list[str], guest_tests: Path) -> Selection:
    """Parse SPECS; every named case must exist (a ConfigError lists the known ones)."""
    sel = parse(specs)
    for prog, cases in sel.items():
        if not cases:
            continue
        known = known_cases(guest_tests, prog)
        if known is None:
            raise ConfigError(
                f"{prog}: cannot run single test cases: only the kselftest_harness.h programs "
                f"of {guest_tests} can ({', '.join(_selectable(guest_tests)) or 'none'}); the "
                f"upstream cgroup selftests run whole: --tests {prog}")
        unknown = [c for c in cases if c not in known]
        if unknown:
            raise ConfigError(f"{prog} has no test case {', '.join(map(repr, unknown))}; "
                              f"its cases: {', '.join(known)}")
    return sel


def guest_args(cases: tuple[str, ...]) -> list[str]:
    """The program's arguments for CASES (kselftest_harness.h `-r`); none = all."""
    return [a for c in cases for a in ("-r", c)]


def cmdline_entry(prog: str, cases: tuple[str, ...]) -> str:
    """`prog` or `prog:case:case` for harness.tests= (names hold no `:` or `,`)."""
    return ":".join((prog, *cases))
