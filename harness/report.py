"""Stages 7-8, parse and report: console log -> test tree -> verdict + files.

The console holds KUnit's KTAP (printed while the kernel boots) and then the
guest init's KTAP. Each guest test is held against its declared expectation
for this kernel; kernel splats fail the run whatever the tests said. A test
declared flaky (an upstream selftest racing per-CPU charge caches) that fails
alone gets one more run in a fresh boot; the report says so either way.
"""

import subprocess
from dataclasses import dataclass, field

from harness import decode, expectations, ktap, printer, reproduce, splat
from harness.boot import GUEST_START, BootOutcome, strip_timestamp
from harness.errors import EXIT_INFRA, EXIT_OK, EXIT_TEST_FAILURE
from harness.junit import to_junit
from harness.ktap import Status, TestResult
from harness.results import RunRecord
from harness.results_json import to_json

_FAILED = {Status.FAIL, Status.CRASHED, Status.TIMEOUT, Status.ERROR}


@dataclass
class Mismatch:
    program: str
    leaf: TestResult  # the program node itself for a program without subtests
    flaky: str  # the declared reason it may fail by chance, or ""


@dataclass
class Verdict:
    """One boot, judged: the tree the report shows and everything that fails it."""

    outcome: BootOutcome
    root: TestResult
    splats: list[splat.Splat]
    kunit_failed: list[TestResult]
    mismatches: list[Mismatch]
    guest_started: bool
    # "prog/test" of the flaky tests that failed first and matched on the retry
    retried: list[str] = field(default_factory=list)

    @property
    def code(self) -> int:
        if (self.outcome.end == "done" and not self.splats and not self.mismatches
                and not self.kunit_failed):
            return EXIT_OK
        if not self.guest_started and not self.splats and self.outcome.end != "done":
            return EXIT_INFRA  # never reached the tests: boot or QEMU trouble
        return EXIT_TEST_FAILURE

    def flaky_programs(self) -> list[str]:
        """Programs worth one more run: the boot itself was clean and every
        test that disagreed with its declaration is declared flaky."""
        if (self.outcome.end != "done" or self.splats or self.kunit_failed
                or not self.mismatches or not all(m.flaky for m in self.mismatches)):
            return []
        return sorted({m.program for m in self.mismatches})


def split_console(lines: list[str]) -> tuple[list[str], list[str] | None]:
    """(kernel boot part, guest part or None if the guest never started)."""
    for i, line in enumerate(lines):
        if strip_timestamp(line).startswith(GUEST_START):
            return lines[:i], lines[i + 1:]
    return lines, None


def _crashed(name: str, why: str) -> TestResult:
    return TestResult(name=name, status=Status.CRASHED, number=None, directive="",
                      reason=why, children=[], log=[], expected_count=None)


def _judge(node: TestResult, exp: expectations.Expectation, kernel: str) -> int:
    """Fold the expectation into a leaf's status; return 1 on a mismatch."""
    want = exp.on(kernel)
    got = expectations.outcome_of(node.status)
    if expectations.matches(node.status, want):
        if got == "fail":
            node.status = Status.XFAIL
            node.reason = f"fails on {kernel} as declared ({node.reason or 'failed'})"
        return 0
    node.reason = f"declared {want} on {kernel}, got {got}" + (
        f" ({node.reason})" if node.reason else "")
    if got != "fail":
        node.status = Status.FAIL
    return 1


def judge_guest(doc: TestResult | None, tests: list[str], table: expectations.Table,
                kernel: str) -> tuple[TestResult, int]:
    """One child per selected program; return (tree, number of mismatches)."""
    root, mismatches = judge_programs(doc, tests, table, kernel)
    return root, len(mismatches)


def judge_programs(doc: TestResult | None, tests: list[str], table: expectations.Table,
                   kernel: str) -> tuple[TestResult, list[Mismatch]]:
    by_name = {c.name: c for c in (doc.children if doc else [])}
    progs = []
    mismatches: list[Mismatch] = []
    for prog in tests:
        node = by_name.get(prog) or _crashed(prog, "never reported (guest crashed or hung)")
        if node.children:
            for leaf in _leaves(node):
                exp = expectations.lookup(table, prog, leaf.name)
                if _judge(leaf, exp, kernel):
                    mismatches.append(Mismatch(prog, leaf, exp.flaky))
            if node.status == Status.TIMEOUT:
                mismatches.append(Mismatch(prog, node, ""))
            else:
                _set_program_status(node)
        else:
            if _judge(node, expectations.lookup(table, prog, expectations.DEFAULT), kernel):
                mismatches.append(Mismatch(prog, node, ""))
        progs.append(node)
    root = TestResult(name="guest", status=Status.PASS, number=None, directive="", reason="",
                      children=progs, log=[], expected_count=len(tests))
    _set_guest_status(root)
    return root, mismatches


def _set_program_status(node: TestResult) -> None:
    node.status = Status.FAIL if any(x.status in _FAILED for x in _leaves(node)) else Status.PASS


def _set_guest_status(guest: TestResult) -> None:
    guest.status = (Status.FAIL if any(p.status in _FAILED for p in guest.children)
                    else Status.PASS)


def _leaves(node: TestResult) -> list[TestResult]:
    if not node.children:
        return [node]
    return [x for c in node.children for x in _leaves(c)]


def judge(outcome: BootOutcome, tests: list[str], kernel: str,
          table: expectations.Table) -> Verdict:
    boot_part, guest_part = split_console(outcome.lines)
    kunit = ktap.parse(boot_part)
    guest_docs = [d for d in (ktap.parse(guest_part).children if guest_part is not None else [])
                  if d.name == "guest"]
    guest, mismatches = judge_programs(guest_docs[0] if guest_docs else None, tests, table,
                                       kernel)
    kunit_root = TestResult(name="kunit", status=Status.PASS,
                            children=[s for doc in kunit.children for s in doc.children])
    kunit_failed = [leaf for leaf in _leaves(kunit_root)
                    if leaf is not kunit_root and leaf.status in _FAILED]
    tops = [kunit_root, guest] if kunit_root.children else [guest]
    return Verdict(outcome=outcome, root=TestResult(name="", status=Status.PASS, children=tops),
                   splats=splat.find_splats(outcome.lines), kunit_failed=kunit_failed,
                   mismatches=mismatches, guest_started=guest_part is not None)


def absorb_retry(first: Verdict, retry: Verdict) -> None:
    """Fold a retry of the flaky programs into the first verdict.

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
        if again is None or _key(m) in failed_again:
            still.append(m)
            continue
        first.retried.append(f"{m.program}/{m.leaf.name}")
        m.leaf.status, m.leaf.directive = again.status, again.directive
        m.leaf.reason = (f"flaky: first run {m.leaf.reason}; "
                         f"{expectations.outcome_of(again.status)} on the retry "
                         f"(declared flaky: {m.flaky})")
        m.leaf.log = [*m.leaf.log, "--- retry ---", *again.log]
    # Tests that passed the first time but not on the retry fail the run too.
    first.mismatches = still + [m for m in retry.mismatches if _key(m) not in failed_first]
    retried_progs = {p.name for p in guest.children}
    for s in retry.splats:  # their line numbers are in the retry's console
        s.title = f"{s.title} (in console-retry.log)"
    first.splats += retry.splats
    first.kunit_failed += retry.kunit_failed
    if retry.outcome.end != "done":
        first.outcome.end = retry.outcome.end
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
    return next((leaf for leaf in _leaves(prog) if leaf.name == name), None)


def write(rec: RunRecord, outcome: BootOutcome, tests: list[str], kernel: str,
          declared: expectations.Table) -> int:
    verdict = judge(outcome, tests, kernel, declared)
    return emit(rec, verdict, kernel)


def emit(rec: RunRecord, verdict: Verdict, kernel: str) -> int:
    """Write junit.xml, summary.txt and results.json; print the summary."""
    code = verdict.code
    outcome, root, splats = verdict.outcome, verdict.root, verdict.splats
    if splats:
        decode_splats(rec, splats)
    metadata = dict(rec.data.get("metadata", {}), kernel=kernel, boot_end=outcome.end)
    data = to_json(root, splats, metadata)
    rec.data.update(tests=data.get("tests", []), counts=data.get("counts", {}),
                    splats=data.get("splats", []), mismatches=len(verdict.mismatches),
                    flaky=sorted(verdict.retried))
    rec.path("junit.xml").write_text(to_junit(root, f"harness.{kernel}", splats))
    summary = summarize(root, splats, outcome, kernel, len(verdict.mismatches), code,
                        retried=verdict.retried)
    if code != EXIT_OK and (line := reproduce.record(rec.data)):
        summary += "\n" + line
    rec.path("summary.txt").write_text(summary + "\n")
    print(summary, flush=True)
    status = "pass" if code == EXIT_OK else ("error" if code == EXIT_INFRA else "fail")
    rec.finish(status, code)
    return code


def decode_splats(rec: RunRecord, splats: list[splat.Splat]) -> None:
    """Decode the splats' stack traces with the image's vmlinux, if it kept one."""
    where = decode.decoder_for(rec.data.get("metadata", {}).get("image") or {})
    if where is None:
        rec.meta(decoded="no: this image kept no vmlinux (built before decoding existed?)")
        return
    vmlinux, tree = where
    printer.stage(f"Decoding the stack traces with {decode.SCRIPT} and {vmlinux} ...")
    try:
        placed = decode.decode_splats(splats, vmlinux, tree)
    except (OSError, subprocess.SubprocessError) as e:
        printer.warn(f"stack traces left as printed: {e}")
        rec.meta(decoded=f"no: {e}")
        return
    rec.meta(decoded=f"{placed} frames at file:line by {tree / decode.SCRIPT} {vmlinux}")


def summarize(root: TestResult, splats: list[splat.Splat], outcome: BootOutcome, kernel: str,
              mismatches: int, code: int, retried: list[str] | None = None) -> str:
    out = []
    for top in root.children:
        for node in top.children:
            out.append(f"  {_mark(node.status)} {top.name}/{node.name}")
            for leaf in _leaves(node):
                if leaf is node:
                    continue
                flaky_leaf = f"{node.name}/{leaf.name}" in (retried or [])
                if leaf.status != Status.PASS or flaky_leaf:
                    mark = "[FLAKY]" if flaky_leaf else _mark(leaf.status)
                    out.append(f"      {mark} {leaf.name}"
                               + (f": {leaf.reason}" if leaf.reason else ""))
                if leaf.status in _FAILED or flaky_leaf:
                    out.extend(_log_tail(leaf, "          | "))
            if not node.children and node.status in _FAILED:
                out.extend(_log_tail(node, "      | "))
    for s in splats:
        out.append(f"  KERNEL SPLAT ({s.kind}) at console line {s.line_number + 1}: {s.title}")
        out.extend(f"      {line}" for line in s.shown[:40])
    counts: dict[str, int] = {}
    for top in root.children:
        for leaf in _leaves(top):
            if leaf is not top:
                counts[leaf.status.name] = counts.get(leaf.status.name, 0) + 1
    verdict = {EXIT_OK: "PASSED", EXIT_INFRA: "BOOT/INFRA FAILURE"}.get(code, "FAILED")
    times = (f"first console line {outcome.first_output:.1f}s, " if outcome.first_output else "")
    if outcome.first_ktap is not None:
        times += f"first KTAP line {outcome.first_ktap:.1f}s, "
    head = (f"{verdict}: {kernel} kernel, accel {outcome.accel}, guest {outcome.end} after "
            f"{outcome.seconds:.1f}s ({times.rstrip(', ')})")
    tally = ", ".join(f"{v} {k.lower()}" for k, v in sorted(counts.items()))
    tail = f"Tests: {tally or 'none'}; {mismatches} unexpected; {len(splats)} kernel splats"
    if retried:
        tail += f"; {len(retried)} flaky (failed once, then as declared on a retry)"
    return "\n".join([head, *out, tail])


# Enough of a failed test's own output (its assertion messages, the values an
# upstream selftest prints before "not ok") to see what broke without the log.
LOG_TAIL = 12


def _log_tail(node: TestResult, prefix: str) -> list[str]:
    lines = [line.strip() for line in node.log if line.strip()]
    return [f"{prefix}{line}" for line in lines[-LOG_TAIL:]]


def _mark(status: Status) -> str:
    return {Status.PASS: "[PASSED]", Status.SKIP: "[SKIPPED]", Status.XFAIL: "[XFAIL]"}.get(
        status, f"[{status.name}]")


