"""Stage 8, report: a judged boot (harness/judge.py) -> summary, JUnit, results.json.

The verdict is the judge's; this module only writes it down. A test
declared flaky that failed alone and matched on its retry boot is shown as
[FLAKY], with both runs' output.
"""

import subprocess

from harness import decode, printer, reproduce, splat
from harness import judge as judging
from harness.boot import BootOutcome
from harness.errors import EXIT_INFRA, EXIT_OK
from harness.judge import Verdict
from harness.junit import to_junit
from harness.ktap import FAILING, Status, TestResult
from harness.results import RunRecord
from harness.results_json import to_json


def emit(rec: RunRecord, verdict: Verdict, kernel: str) -> int:
    """Write junit.xml, summary.txt and results.json; print the summary."""
    code = verdict.code
    root, splats = verdict.root, verdict.splats
    outcome = verdict.outcome or BootOutcome(accel="?", end=verdict.end, seconds=0.0)
    if splats:
        decode_splats(rec, splats)
    metadata = dict(rec.data.get("metadata", {}), kernel=kernel, boot_end=verdict.end)
    data = to_json(root, splats, metadata)
    rec.data.update(tests=data.get("tests", []), counts=data.get("counts", {}),
                    splats=data.get("splats", []), mismatches=len(verdict.mismatches),
                    flaky=sorted(verdict.retried), infra_errors=list(verdict.errors),
                    reasons=verdict.reasons,
                    # What disagreed with its declaration, and whether that
                    # test is declared flaky (only those may be retried).
                    unexpected=[{"name": f"guest/{m.name}", "status": m.leaf.status.value,
                                 "flaky": m.flaky} for m in verdict.mismatches])
    rec.path("junit.xml").write_text(to_junit(root, f"harness.{kernel}", splats))
    summary = summarize(verdict, outcome, kernel)
    if code != EXIT_OK and (line := reproduce.record(rec.data)):
        summary += "\n" + line
    rec.path("summary.txt").write_text(summary + "\n")
    print(summary, flush=True)
    status = "pass" if code == EXIT_OK else ("error" if code == EXIT_INFRA else "fail")
    message = "; ".join(verdict.errors[:3])
    rec.finish(status, code, message)
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


def summarize(verdict: Verdict, outcome: BootOutcome, kernel: str) -> str:
    root, splats, retried = verdict.root, verdict.splats, verdict.retried
    out = []
    for top in root.children:
        for node in top.children:
            out.append(f"  {_mark(node.status)} {top.name}/{node.name}")
            for leaf in judging.leaves(node):
                if leaf is node:
                    continue
                flaky_leaf = f"{node.name}/{leaf.name}" in retried
                if leaf.status != Status.PASS or flaky_leaf:
                    mark = "[FLAKY]" if flaky_leaf else _mark(leaf.status)
                    out.append(f"      {mark} {leaf.name}"
                               + (f": {leaf.reason}" if leaf.reason else ""))
                if leaf.status in FAILING or flaky_leaf:
                    out.extend(_log_tail(leaf, "          | "))
            if not node.children and node.status in FAILING:
                out.extend(_log_tail(node, "      | "))
    for s in splats:
        out.append(f"  KERNEL SPLAT ({s.kind}) at console line {s.line_number + 1}: {s.title}")
        out.extend(f"      {line}" for line in s.shown[:40])
    out += [f"  INFRASTRUCTURE: {e}" for e in verdict.errors]
    out += [f"  UNDECIDED: {u}" for u in verdict.undecided]
    counts: dict[str, int] = {}
    for top in root.children:
        for leaf in judging.leaves(top):
            if leaf is not top:
                counts[leaf.status.name] = counts.get(leaf.status.name, 0) + 1
    code = verdict.code
    word = {EXIT_OK: "PASSED", EXIT_INFRA: "BOOT/INFRA FAILURE"}.get(code, "FAILED")
    times = (f"first console line {outcome.first_output:.1f}s, " if outcome.first_output else "")
    if outcome.first_ktap is not None:
        times += f"first KTAP line {outcome.first_ktap:.1f}s, "
    head = (f"{word}: {kernel} kernel, accel {outcome.accel}, guest {verdict.end} after "
            f"{outcome.seconds:.1f}s ({times.rstrip(', ')})")
    tally = ", ".join(f"{v} {k.lower()}" for k, v in sorted(counts.items()))
    tail = (f"Tests: {tally or 'none'}; {len(verdict.mismatches)} unexpected; "
            f"{len(splats)} kernel splats")
    if verdict.errors:
        tail += f"; {len(verdict.errors)} infrastructure errors (the console was not fully read)"
    if retried:
        tail += f"; {len(retried)} flaky (failed, then as declared on a retry)"
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


