"""Stages 7-8, parse and report: console log -> test tree -> verdict + files.

The console holds KUnit's KTAP (printed while the kernel boots) and then the
guest init's KTAP. Each guest test is held against its declared expectation
for this kernel; kernel splats fail the run whatever the tests said.
"""

from pathlib import Path

from harness import expectations, ktap, splat
from harness.boot import GUEST_START, BootOutcome, strip_timestamp
from harness.errors import EXIT_INFRA, EXIT_OK, EXIT_TEST_FAILURE
from harness.junit import to_junit
from harness.ktap import Status, TestResult
from harness.results import RunRecord
from harness.results_json import to_json

_FAILED = {Status.FAIL, Status.CRASHED, Status.TIMEOUT, Status.ERROR}


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
    by_name = {c.name: c for c in (doc.children if doc else [])}
    progs = []
    mismatches = 0
    for prog in tests:
        node = by_name.get(prog) or _crashed(prog, "never reported (guest crashed or hung)")
        if node.children:
            for leaf in _leaves(node):
                name = leaf.name
                mismatches += _judge(leaf, expectations.lookup(table, prog, name), kernel)
            if node.status == Status.TIMEOUT:
                mismatches += 1
            else:
                node.status = (Status.FAIL if any(x.status in _FAILED for x in _leaves(node))
                               else Status.PASS)
        else:
            mismatches += _judge(node, expectations.lookup(table, prog, expectations.DEFAULT),
                                 kernel)
        progs.append(node)
    root = TestResult(name="guest", status=Status.PASS, number=None, directive="", reason="",
                      children=progs, log=[], expected_count=len(tests))
    if any(p.status in _FAILED for p in progs):
        root.status = Status.FAIL
    return root, mismatches


def _leaves(node: TestResult) -> list[TestResult]:
    if not node.children:
        return [node]
    return [x for c in node.children for x in _leaves(c)]


def write(rec: RunRecord, outcome: BootOutcome, tests: list[str], kernel: str,
          expectations_path: Path) -> int:
    boot_part, guest_part = split_console(outcome.lines)
    kunit = ktap.parse(boot_part)
    guest_docs = [d for d in (ktap.parse(guest_part).children if guest_part is not None else [])
                  if d.name == "guest"]
    table = expectations.load(expectations_path)
    guest, mismatches = judge_guest(guest_docs[0] if guest_docs else None, tests, table, kernel)
    splats = splat.find_splats(outcome.lines)

    kunit_root = TestResult(name="kunit", status=Status.PASS,
                            children=[s for doc in kunit.children for s in doc.children])
    kunit_failed = [leaf for leaf in _leaves(kunit_root)
                    if leaf is not kunit_root and leaf.status in _FAILED]
    tops = [kunit_root, guest] if kunit_root.children else [guest]
    root = TestResult(name="", status=Status.PASS, children=tops)

    if outcome.end == "done" and not splats and not mismatches and not kunit_failed:
        code = EXIT_OK
    elif guest_part is None and not splats and outcome.end != "done":
        code = EXIT_INFRA  # never reached the tests: boot or QEMU trouble
    else:
        code = EXIT_TEST_FAILURE

    metadata = dict(rec.data.get("metadata", {}), kernel=kernel, boot_end=outcome.end)
    data = to_json(root, splats, metadata)
    rec.data.update(tests=data.get("tests", []), counts=data.get("counts", {}),
                    splats=data.get("splats", []), mismatches=mismatches)
    rec.path("junit.xml").write_text(to_junit(root, f"harness.{kernel}", splats))
    summary = summarize(root, splats, outcome, kernel, mismatches, code)
    rec.path("summary.txt").write_text(summary + "\n")
    print(summary, flush=True)
    status = "pass" if code == EXIT_OK else ("error" if code == EXIT_INFRA else "fail")
    rec.finish(status, code)
    return code


def summarize(root: TestResult, splats: list[splat.Splat], outcome: BootOutcome, kernel: str,
              mismatches: int, code: int) -> str:
    out = []
    for top in root.children:
        for node in top.children:
            out.append(f"  {_mark(node.status)} {top.name}/{node.name}")
            for leaf in _leaves(node):
                if leaf is node:
                    continue
                if leaf.status != Status.PASS:
                    out.append(f"      {_mark(leaf.status)} {leaf.name}"
                               + (f": {leaf.reason}" if leaf.reason else ""))
                if leaf.status in _FAILED:
                    out.extend(_log_tail(leaf, "          | "))
            if not node.children and node.status in _FAILED:
                out.extend(_log_tail(node, "      | "))
    for s in splats:
        out.append(f"  KERNEL SPLAT ({s.kind}) at console line {s.line_number + 1}: {s.title}")
        out.extend(f"      {line}" for line in s.lines[:40])
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


