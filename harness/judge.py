"""The one judge: a boot's console, the declarations and a policy -> one Verdict.

`harness test`, build-and-test, bench, patchcheck, bisect and nightly all ask
this module whether a boot passed; they differ only in the Policy (which
kernels' declarations a result may match, one named case that must pass, a
splat as the thing looked for). The rules:

- a test passes its declaration only as declared: `pass` wants ok, `skip`
  wants a skip (a program printing `1..0 # SKIP` is a skip of the program),
  `{fail: TEXT}` wants `not ok` (not a crash, timeout or error) with TEXT in
  the test's own output;
- a kernel splat fails the run, and the test case that was running when it
  appeared (the one whose result line comes next);
- a console the KTAP parser or the splat detector failed on was not checked:
  that is an infrastructure failure, never a pass.

The console is parsed here (`read`); the trees it returns are judged in place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from harness import expectations, ktap, splat
from harness.boot import GUEST_DONE, GUEST_START, BootOutcome, strip_timestamp
from harness.errors import EXIT_INFRA, EXIT_OK, EXIT_TEST_FAILURE, ConfigError
from harness.expectations import Outcome
from harness.ktap import FAILING, Status, TestResult

_PASSED = frozenset({Status.PASS, Status.XFAIL})
_SKIPPED = frozenset({Status.SKIP, Status.NO_TESTS})
_RAN_CLEAN = frozenset({Status.PASS, Status.SKIP, Status.NO_TESTS})  # no failure, declared or not


@dataclass(frozen=True)
class Policy:
    """What a verdict is held against, beyond the declarations."""

    # A result is fine when any of these kernels is declared to give it
    # (one kernel for `harness test`; both for a commit between them).
    kernels: tuple[str, ...] = expectations.KERNELS
    case: str = ""  # judge only this case of the (single) program: it must pass
    expect_splat: bool = False  # bad = a kernel splat, whatever the tests say
    kunit: bool = True  # KUnit failures count


@dataclass
class Console:
    """One boot's console, parsed."""

    lines: list[str]
    kunit: TestResult  # KUnit's suites (printed while the kernel boots) as children
    guest: TestResult | None  # the guest init's KTAP document
    guest_start: int | None  # index in LINES of the guest's first line; None: never started
    splats: list[splat.Splat]
    errors: list[str]  # where the KTAP parser or the splat detector failed


def split_console(lines: list[str]) -> tuple[list[str], list[str] | None]:
    """(kernel boot part, guest part or None if the guest never started)."""
    start = _guest_start(lines)
    return (lines, None) if start is None else (lines[:start - 1], lines[start:])


def _guest_start(lines: list[str]) -> int | None:
    for i, line in enumerate(lines):
        if strip_timestamp(line).startswith(GUEST_START):
            return i + 1
    return None


def read(lines: list[str]) -> Console:
    boot_part, guest_part = split_console(lines)
    kunit_doc = ktap.parse(boot_part)
    errors = [f"KTAP parser (kernel boot part): {e}" for e in ktap.parse_errors(kunit_doc)]
    guest = None
    if guest_part is not None:
        tree = ktap.parse(guest_part)
        errors += [f"KTAP parser (guest part): {e}" for e in ktap.parse_errors(tree)]
        guest = next((d for d in tree.children if d.name == "guest"), None)
    splats, failed = splat.scan(lines)
    errors += [f"splat detector, {e}" for e in failed]
    kunit = TestResult(name="kunit", status=Status.PASS,
                       children=[s for doc in kunit_doc.children for s in doc.children])
    return Console(lines=lines, kunit=kunit, guest=guest, guest_start=_guest_start(lines),
                   splats=splats, errors=errors)


@dataclass
class Mismatch:
    program: str
    leaf: TestResult  # the program node itself for a program without subtests
    flaky: str  # the declared reason it may fail by chance, or ""

    @property
    def name(self) -> str:
        """"prog/test", or "prog" for the program itself (as ktap.walk names it)."""
        return self.program if self.leaf.name == self.program else (
            f"{self.program}/{self.leaf.name}")


@dataclass
class Verdict:
    """One boot, judged: the tree the reports show and everything that fails it."""

    end: str  # how the boot ended (BootOutcome.end)
    root: TestResult  # children: kunit (if it printed anything) and guest
    splats: list[splat.Splat]
    kunit_failed: list[TestResult]
    mismatches: list[Mismatch]
    guest_started: bool
    errors: list[str] = field(default_factory=list)  # the console was not fully checked
    undecided: list[str] = field(default_factory=list)  # cannot tell pass from fail
    expect_splat: bool = False
    judged: str = ""  # what a pass is a pass of, for its reason
    # "prog/test" of the flaky tests that failed first and matched on the retry
    retried: list[str] = field(default_factory=list)
    outcome: BootOutcome | None = None  # the boot itself, for reports that show its timing

    @property
    def code(self) -> int:
        if self.errors:
            return EXIT_INFRA
        if self.expect_splat:
            if self.splats:
                return EXIT_TEST_FAILURE
            return EXIT_OK if self.end == "done" else EXIT_INFRA
        if not self.guest_started and not self.splats and self.end != "done":
            return EXIT_INFRA  # never reached the tests: boot or QEMU trouble
        if self.splats or self.kunit_failed or self.mismatches:
            return EXIT_TEST_FAILURE
        if self.undecided:
            return EXIT_INFRA
        # The guest ran the tests but did not finish: the kernel hung or died.
        return EXIT_OK if self.end == "done" else EXIT_TEST_FAILURE

    @property
    def word(self) -> str:
        return {EXIT_OK: "pass", EXIT_TEST_FAILURE: "fail"}.get(self.code, "error")

    @property
    def reasons(self) -> list[str]:
        """One line per thing that decided the verdict, the worst first."""
        out = [f"infrastructure: {e}" for e in self.errors]
        out += [f"kernel splat ({s.kind}): {s.title}" for s in self.splats]
        if self.expect_splat:
            if not out:
                out.append("no kernel splat" if self.end == "done"
                           else f"no splat, but the guest did not finish ({self.end})")
            return out
        if not self.guest_started:
            out.append(f"the guest never started the tests ({self.end})")
        out += [f"kunit/{leaf.name}: {leaf.status.name}" for leaf in self.kunit_failed]
        out += [f"{m.name}: {m.leaf.status.name}" + (f" ({m.leaf.reason})" if m.leaf.reason
                                                       else "") for m in self.mismatches]
        out += self.undecided
        if self.guest_started and self.end != "done":
            out.append(f"the guest did not finish ({self.end})")
        return out or [f"{self.judged or 'boot'}: pass"]

    @property
    def output(self) -> list[str]:
        """The lines of what failed first: a splat, a KUnit case or a test."""
        if self.splats:
            return list(self.splats[0].lines)
        for leaf in [*self.kunit_failed, *(m.leaf for m in self.mismatches)]:
            if leaf.log:
                return list(leaf.log)
        return []

    def flaky_programs(self) -> list[str]:
        """Programs worth one more run: the boot itself was clean and every
        test that disagreed with its declaration is declared flaky."""
        if (self.end != "done" or self.errors or self.splats or self.kunit_failed
                or not self.mismatches or not all(m.flaky for m in self.mismatches)):
            return []
        return sorted({m.program for m in self.mismatches})


# --- a test against its declaration ---------------------------------------------------------

def _shown(status: Status) -> str:
    return {Status.PASS: "pass", Status.XFAIL: "pass", Status.SKIP: "skip",
            Status.NO_TESTS: "skip (no tests)", Status.FAIL: "fail"}.get(status, status.name)


def _accepts(want: Outcome, leaf: TestResult) -> bool:
    if want.want == "pass":
        return leaf.status in _PASSED
    if want.want == "skip":
        return leaf.status in _SKIPPED
    return leaf.status == Status.FAIL and want.seen_in([*leaf.log, leaf.reason])


def _judge_leaf(leaf: TestResult, exp: expectations.Expectation,
                kernels: tuple[str, ...]) -> bool:
    """Fold the declaration into LEAF's status and reason; False on a mismatch."""
    wants = [(k, exp.on(k)) for k in kernels]
    for k, want in wants:
        if _accepts(want, leaf):
            if want.want == "fail":
                leaf.status = Status.XFAIL
                leaf.reason = f"fails on {k} as declared, showing {want.shows!r}"
            return True
    declared = " or ".join(f"{want} on {k}" for k, want in wants)
    why = f"declared {declared}, got {_shown(leaf.status)}"
    shows = [want.shows for _, want in wants if want.want == "fail"]
    if shows and leaf.status == Status.FAIL:
        why += f", but its output does not show {' or '.join(map(repr, shows))}"
    leaf.reason = why + (f" ({leaf.reason})" if leaf.reason else "")
    if leaf.status in _PASSED or leaf.status in _SKIPPED:
        leaf.status = Status.FAIL
    return False


def leaves(node: TestResult) -> list[TestResult]:
    """The leaves below NODE (NODE itself if it has no children)."""
    if not node.children:
        return [node]
    return [x for c in node.children for x in leaves(c)]


def _crashed(name: str) -> TestResult:
    return TestResult(name=name, status=Status.CRASHED,
                      reason="never reported (guest crashed or hung)")


_EMPTY_PLAN = re.compile(r"^\s*1\.\.0\s*(?:#\s*(.*))?$")


def _no_tests_is_a_skip(node: TestResult) -> None:
    """A program that planned no tests (`1..0 # SKIP why`) skipped itself,
    whatever its exit code said."""
    if node.children or node.expected_count != 0 or node.status not in _PASSED | _SKIPPED:
        return
    why = next((m.group(1) or "" for line in node.log if (m := _EMPTY_PLAN.match(line))), "")
    node.status = Status.SKIP
    node.reason = node.reason or why.removeprefix("SKIP").strip(" :") or "planned no tests"


def _judge_program(prog: str, node: TestResult, table: expectations.Table,
                   policy: Policy) -> tuple[list[Mismatch], list[str]]:
    """(mismatches, undecided reasons) of one program against POLICY."""
    mismatches: list[Mismatch] = []
    if policy.case:
        cases = [x for x in leaves(node) if x.name == policy.case]
        if not cases:
            if node.status in (Status.CRASHED, Status.TIMEOUT):  # died before it
                node.reason = f"{node.status.name} before {policy.case} reported" + (
                    f" ({node.reason})" if node.reason else "")
                return [Mismatch(prog, node, "")], []
            known = ", ".join(x.name for x in leaves(node))
            raise ConfigError(f"{prog} has no test case {policy.case!r} (it has: {known})")
        bad = [Mismatch(prog, x, "") for x in cases if x.status not in _PASSED
               and x.status not in _SKIPPED]
        skipped = [f"{prog}/{x.name}: skipped ({x.reason or 'no reason given'}): "
                   "a skip tells nothing about this commit" for x in cases
                   if x.status in _SKIPPED]
        return bad, skipped
    if not node.children:
        _no_tests_is_a_skip(node)
        exp = expectations.lookup(table, prog, expectations.DEFAULT)
        if not _judge_leaf(node, exp, policy.kernels):
            mismatches.append(Mismatch(prog, node, ""))
        return mismatches, []
    for leaf in leaves(node):
        exp = expectations.lookup(table, prog, leaf.name)
        if not _judge_leaf(leaf, exp, policy.kernels):
            mismatches.append(Mismatch(prog, leaf, exp.flaky))
    # The program failing where none of its tests shows it (a hang or crash
    # after its last case, an error exit): a test of its own in every output.
    why = ""
    if node.status in (Status.TIMEOUT, Status.CRASHED, Status.ERROR) and not any(
            x.status in FAILING for x in leaves(node)):
        why = f"the program ended {node.status.name} after its last test"
    elif node.status == Status.FAIL and all(x.status in _RAN_CLEAN for x in leaves(node)):
        why = "every test passed, but the program failed"
    if why:
        leaf = _outside_tests(node)
        leaf.status = node.status
        leaf.reason = why + (f" ({node.reason})" if node.reason else "")
        leaf.log = list(node.log[-LOG_LINES:])
        mismatches.append(Mismatch(prog, leaf, ""))
    return mismatches, []


def _set_program_status(node: TestResult) -> None:
    node.status = Status.FAIL if any(x.status in FAILING for x in leaves(node)) else Status.PASS


def _set_guest_status(guest: TestResult) -> None:
    guest.status = (Status.FAIL if any(p.status in FAILING for p in guest.children)
                    else Status.PASS)


# --- splats, attributed to the test that was running -----------------------------------------

def _running_when(console: Console) -> list[tuple[splat.Splat, list[str]]]:
    """Each splat printed while the guest ran its tests, with the names
    (program first) of the test it appeared in: the one whose result line
    came next, or the program that was running if none came (it died).

    kselftest prints `# RUN fixture.test` before each case and `ok`/`not ok`
    after it, and the guest init runs the programs one after another, so the
    next result line at each level names the case and then the program."""
    if console.guest_start is None:
        return []
    start = console.guest_start
    by_line: dict[int, list[splat.Splat]] = {}
    for s in console.splats:
        if s.line_number >= start:
            by_line.setdefault(s.line_number, []).append(s)
    # [splat, names so far, indentation of the last one, program at the time]
    waiting: list[list] = []
    done: list[tuple[splat.Splat, list[str]]] = []
    doc_indent: int | None = None
    program = ""
    for i in range(start, len(console.lines)):
        waiting += [[s, [], None, program] for s in by_line.get(i, [])]
        text, from_kernel = ktap.strip_printk_prefix(console.lines[i])
        if from_kernel:
            continue
        if text.startswith(GUEST_DONE):
            break
        try:
            indent, kind, name = ktap.line_kind(text)
        except Exception as e:  # noqa: BLE001 - the parser failed here too: infrastructure
            console.errors.append(f"splat attribution, console line {i + 1}: {e!r}")
            continue
        if doc_indent is None:
            doc_indent = indent if kind == "version" else None
            continue
        if kind == "subtest" and indent > doc_indent and not program:
            program = name
            continue
        if kind != "result":
            continue
        for w in waiting:
            if w[2] is None or indent < w[2]:
                w[1].insert(0, name)
                w[2] = indent
        for w in [w for w in waiting if w[2] is not None and w[2] <= doc_indent]:
            waiting.remove(w)
            done.append((w[0], w[1]))
        if indent <= doc_indent:
            program = ""
    done += [(w[0], [w[3]]) for w in waiting if w[3]]
    return sorted(done, key=lambda d: d[0].line_number)


def _blame(guest: TestResult, s: splat.Splat, names: list[str]) -> None:
    prog = next((p for p in guest.children if p.name == names[0]), None)
    if prog is None:
        return
    node = prog
    for name in names[1:]:
        node = next((c for c in node.children if c.name == name), node)
    if node.children:  # no case named: the one that never reported, or the program's exit
        node = next((x for x in leaves(node) if x.status == Status.CRASHED), None) or \
            _outside_tests(node)
    why = (f"kernel splat ({s.kind}) at console line {s.line_number + 1} during this test: "
           f"{s.title}")
    node.reason = why + (f"; {node.reason}" if node.reason else "")
    if node.status not in FAILING:
        node.status = Status.FAIL
    node.log = [*node.log, f"--- {why} ---", *s.lines]


OUTSIDE = "(outside its tests)"  # a program's own leaf, for what no test case reported
LOG_LINES = 40  # of a program's output, for a failure outside its tests


def _outside_tests(prog: TestResult) -> TestResult:
    leaf = next((c for c in prog.children if c.name == OUTSIDE), None)
    if leaf is None:
        leaf = TestResult(name=OUTSIDE, status=Status.PASS, number=len(prog.children) + 1)
        prog.children.append(leaf)
    return leaf


# --- the verdict ---------------------------------------------------------------------------

def judge(console: Console, end: str, programs: list[str], table: expectations.Table,
          policy: Policy) -> Verdict:
    """The verdict on one boot: CONSOLE's trees are judged in place (statuses
    and reasons say what the declarations made of them)."""
    guest_started = console.guest_start is not None
    progs: list[TestResult] = []
    mismatches: list[Mismatch] = []
    undecided: list[str] = []
    by_name = {c.name: c for c in (console.guest.children if console.guest else [])}
    for prog in programs:
        node = by_name.get(prog) or _crashed(prog)
        bad, unsure = _judge_program(prog, node, table, policy)
        mismatches += bad
        undecided += unsure
        progs.append(node)
    guest = TestResult(name="guest", status=Status.PASS, children=progs,
                       expected_count=len(programs))
    for s, names in _running_when(console):
        _blame(guest, s, names)
    for node in progs:
        if node.children:
            _set_program_status(node)
    _set_guest_status(guest)
    kunit_failed = ([leaf for leaf in leaves(console.kunit)
                     if leaf is not console.kunit and leaf.status in FAILING]
                    if policy.kunit else [])
    tops = [console.kunit, guest] if console.kunit.children else [guest]
    judged = policy.case or ", ".join(programs) or "boot"
    return Verdict(end=end, root=TestResult(name="", status=Status.PASS, children=tops),
                   splats=console.splats, kunit_failed=kunit_failed, mismatches=mismatches,
                   guest_started=guest_started, errors=list(console.errors),
                   undecided=undecided, expect_splat=policy.expect_splat, judged=judged)


def judge_boot(outcome: BootOutcome, programs: list[str], table: expectations.Table,
               policy: Policy) -> Verdict:
    """`judge` on a whole boot: its console read here, the outcome kept for reports."""
    verdict = judge(read(outcome.lines), outcome.end, programs, table, policy)
    verdict.outcome = outcome
    return verdict


# --- a retry of the flaky programs ---------------------------------------------------------

def absorb_retry(first: Verdict, retry: Verdict, *, console: str = "console-retry.log",
                 label: str = "the retry") -> None:
    """Fold a retry of the flaky programs (its console log CONSOLE) into the first verdict.

    A flaky test that matches its declaration on the retry takes the retry's
    status and keeps a note of its first failure; one that fails again stays
    failed. Anything the retry boot did wrong (a splat, a hang, another test
    failing) counts against the run like on the first boot.
    """
    guest = next(t for t in retry.root.children if t.name == "guest")
    failed_again = {_key(m) for m in retry.mismatches}
    failed_first = {_key(m) for m in first.mismatches}
    still = []
    for m in first.mismatches:
        again = _find(guest, m.program, m.leaf.name)
        if again is None or _key(m) in failed_again or not m.flaky:
            if again is not None and again.log:
                m.leaf.log = [*m.leaf.log, f"--- {label}: failed again ---", *again.log]
            still.append(m)
            continue
        first.retried.append(f"{m.program}/{m.leaf.name}")
        m.leaf.status, m.leaf.directive = again.status, again.directive
        m.leaf.reason = (f"flaky: first run {m.leaf.reason}; "
                         f"{_shown(again.status)} on {label} "
                         f"(declared flaky: {m.flaky})")
        m.leaf.log = [*m.leaf.log, f"--- {label} ---", *again.log]
    # Tests that passed the first time but not on the retry fail the run too.
    first.mismatches = still + [m for m in retry.mismatches if _key(m) not in failed_first]
    retried_progs = {p.name for p in guest.children}
    for s in retry.splats:  # their line numbers are in the retry's console
        s.title = f"{s.title} (in {console})"
    first.splats += retry.splats
    first.kunit_failed += retry.kunit_failed
    first.errors += [f"retry: {e}" for e in retry.errors]
    if retry.end != "done":
        first.end = retry.end
        if first.outcome is not None:
            first.outcome.end = retry.end
    top = next(t for t in first.root.children if t.name == "guest")
    for prog in top.children:
        if prog.name in retried_progs and prog.children:
            _set_program_status(prog)
    _set_guest_status(top)


def _key(m: Mismatch) -> tuple[str, str]:
    return m.program, m.leaf.name


def _find(guest: TestResult, program: str, name: str) -> TestResult | None:
    prog = next((p for p in guest.children if p.name == program), None)
    if prog is None:
        return None
    if prog.name == name and not prog.children:
        return prog
    return next((leaf for leaf in leaves(prog) if leaf.name == name), None)
