"""One run of the guest tests on an image: rootfs -> boot -> judge -> flaky retry -> report.

Every command that boots guest tests goes through `run_tests`: `harness test`,
build-and-test, matrix and nightly (`test_kernel`, which also writes the
report), the patchcheck and bisect steps (step.py, with their own judging
policy), and bench (bench/runner.py: retry=False, an Attempt naming each
boot's files, samples parsed from the verdict's console lines). The
transport (harness/transports/) only carries the tests to the guest and the
console back; judging and the retry policy are the same for all of them.

A run may boot more than once: when the only tests that disagreed with
their declarations are declared flaky, their programs run again, alone, and
the judge folds that boot into the first one's verdict; up to FLAKY_RETRIES
times while only declared-flaky tests still disagree.
"""

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from harness import judge as judging
from harness import printer, report, run, selection
from harness.boot import BootOutcome
from harness.images import KernelImage
from harness.judge import Verdict
from harness.results import RunRecord
from harness.transports import FIRST, Attempt, Transport
from harness.transports import retry as retry_attempt
from harness.transports.console import Console

CONSOLE = Console()

# Retry boots for declared-flaky failures. One was not enough: upstream's
# test_memcg_low/min (three writers share one file and its offset, so which
# child is charged which page is a race) failed on 6 of 18 first boots on
# both kernels while another QEMU ran beside them, and on 3 of 6 retries.
# Each retry boots only the flaky programs (~10 s for test_memcontrol), and a
# real regression fails every boot.
FLAKY_RETRIES = 3


@dataclass
class Times:
    """Where a run's time went; filled in as it goes, so an aborted run has its share."""

    rootfs: float = 0.0
    boot: float = 0.0  # QEMU start until the guest starts the tests (a KVM probe included)
    tests: float = 0.0  # the guest running the tests, until QEMU ended


@dataclass
class RunResult:
    """What a run found: the verdict (retry folded in) and every boot's console."""

    tests: list[str]  # the programs of the first boot
    verdict: Verdict
    boots: list[BootOutcome] = field(default_factory=list)


def with_tests(req: run.Request, tests: list[str] | None) -> run.Request:
    """REQ running the programs TESTS (None: the profile's selection)."""
    if tests and selection.programs(req.profile.tests) != tests:
        # A case selection of these programs (bisect --test PROG:CASE) stays.
        req = replace(req, profile=replace(req.profile, tests=tests))
    return req


def select(req: run.Request, rootfs: Path, tests: list[str] | None) -> list[str]:
    """TESTS checked against the rootfs; None: the profile's selection; []: boot only."""
    if tests == []:
        return []
    return run.selected_tests(with_tests(req, tests), rootfs)


def run_tests(req: run.Request, img: KernelImage, rec: RunRecord,
              transport: Transport = CONSOLE, *, tests: list[str] | None = None,
              policy: judging.Policy | None = None, retry: bool = True,
              attempt: Attempt = FIRST, times: Times | None = None) -> RunResult:
    """Boot IMG with TESTS over TRANSPORT and judge it (POLICY; by default as REQ's
    kernel is declared to behave), retrying declared-flaky failures if RETRY.

    The verdict keeps the first boot's outcome (its console lines included):
    a caller that reads more than KTAP from the console (bench's samples)
    passes retry=False and its own ATTEMPT names, and parses verdict.outcome.
    """
    times = times if times is not None else Times()
    t0 = time.monotonic()
    try:
        rootfs = run.prepare_rootfs(req, img, rec)
    finally:
        times.rootfs += time.monotonic() - t0
    req = with_tests(req, tests)
    tests = select(req, rootfs, tests)
    table = req.declarations()
    policy = policy or judging.Policy(kernels=(req.kernel,))
    rec.meta(image=img.info, tests_selected=tests)
    first = _boot(req, img, rec, rootfs, tests, transport, attempt, times)
    with req.timings.measure("report"):
        verdict = judging.judge_boot(first, tests, table, policy)
    result = RunResult(tests, verdict, [first])
    for n in range(1, (FLAKY_RETRIES if retry else 0) + 1):
        flaky = verdict.flaky_programs()
        if not flaky:
            break
        why = "; ".join(f"{m.program}/{m.leaf.name}: {m.flaky}" for m in verdict.mismatches)
        printer.info(f"only tests declared flaky failed ({why}); running "
                     f"{', '.join(flaky)} again (retry {n} of at most {FLAKY_RETRIES})")
        attempt = retry_attempt(n)
        rec.meta(**{attempt.key("tests"): flaky})
        again = _boot(req, img, rec, rootfs, flaky, transport, attempt, times)
        result.boots.append(again)
        with req.timings.measure("report"):
            judging.absorb_retry(verdict, judging.judge_boot(again, flaky, table, policy),
                                 console=attempt.file("console"),
                                 label="the retry" if n == 1 else f"retry {n}")
    return result


def test_kernel(req: run.Request, img: KernelImage, rec: RunRecord,
                transport: Transport = CONSOLE) -> int:
    """`harness test` / build-and-test: the run, then summary, JUnit and results.json."""
    verdict = run_tests(req, img, rec, transport).verdict
    with req.timings.measure("report"):
        return report.emit(rec, verdict, req.kernel)


def _boot(req: run.Request, img: KernelImage, rec: RunRecord, rootfs: Path, tests: list[str],
          transport: Transport, attempt: Attempt, times: Times) -> BootOutcome:
    t0 = time.monotonic()
    outcome = None
    try:
        outcome = transport.boot(req, img, rootfs, tests, rec, attempt)
    finally:
        secs = time.monotonic() - t0
        req.timings.seconds["boot+tests"] = req.timings.seconds.get("boot+tests", 0.0) + secs
        # Tests: from the guest starting them to the end of that QEMU run; boot:
        # the rest, a failed KVM probe included.
        tests_secs = (outcome.seconds - outcome.guest_start
                      if outcome and outcome.guest_start is not None else 0.0)
        times.boot += secs - tests_secs
        times.tests += tests_secs
        if outcome is None:
            rec.stage(attempt.stage, "interrupted", secs)
    rec.stage(attempt.stage, outcome.end, secs, accel=outcome.accel,
              first_output=outcome.first_output, first_ktap=outcome.first_ktap,
              guest_start=outcome.guest_start, qemu_exit=outcome.exit_status)
    return outcome
