"""One step of patchcheck or bisect: the tree as checked out -> build -> boot -> verdict.

Unlike `build-and-test`, a step judges a commit that is neither the base
nor the whole series, so the verdict is its own (see `judge`): a test
result is fine when it is what the base or the series is declared to do
(or, for a test case the user named, when it passes). Each step measures
its build, rootfs, boot and test time separately: those are what an
incremental bisect costs.
"""

import time
from dataclasses import dataclass, replace

from harness import expectations, printer, run, selection
from harness import judge as judging
from harness.boot import BootOutcome, boot
from harness.judge import Verdict
from harness.profile import cache_dir
from harness.results import RunRecord


@dataclass
class Judge:
    """What decides a step's verdict."""

    tests: list[str] | None  # guest programs to run; None = the profile's; [] = boot only
    case: str = ""  # judge only this test case of the (single) program
    expect_splat: bool = False  # bad = a kernel splat, whatever the tests say
    # A result is fine when any of these kernels is declared to give it.
    kernels: tuple[str, ...] = expectations.KERNELS
    kunit: bool = True  # KUnit failures count

    def policy(self) -> judging.Policy:
        return judging.Policy(kernels=self.kernels, case=self.case,
                              expect_splat=self.expect_splat, kunit=self.kunit)


def judge(lines: list[str], end: str, jd: Judge, table: expectations.Table) -> Verdict:
    """The verdict on one boot's console: pass, fail (a test or a splat) or infra."""
    return judging.judge(judging.read(lines), end, jd.tests or [], table, jd.policy())


@dataclass
class StepTimes:
    build: float = 0.0  # config + make
    rootfs: float = 0.0
    boot: float = 0.0  # QEMU start until the guest init starts the tests
    tests: float = 0.0

    @property
    def total(self) -> float:
        return self.build + self.rootfs + self.boot + self.tests


def build(req: run.Request, rec: RunRecord, times: StepTimes) -> run.KernelImage:
    """Build the tree as checked out (req.at_head) and add the time to TIMES."""
    t0 = time.monotonic()
    try:
        return run.build_kernel(req, rec)
    finally:
        times.build += time.monotonic() - t0


def boot_and_judge(req: run.Request, img: run.KernelImage, rec: RunRecord, jd: Judge,
                   times: StepTimes) -> Verdict:
    """Boot IMG with JD's tests and judge the console; timings go to TIMES."""
    t0 = time.monotonic()
    rootfs = run.prepare_rootfs(req, img, rec)
    times.rootfs += time.monotonic() - t0
    if jd.tests is None or jd.tests:
        if jd.tests and selection.programs(req.profile.tests) != jd.tests:
            # A case selection of these programs (bisect --test PROG:CASE) stays.
            req = replace(req, profile=replace(req.profile, tests=jd.tests))
        # The default selection, and unknown programs are a usage error.
        jd = replace(jd, tests=run.selected_tests(req, rootfs))
    tests = jd.tests or []
    cmds, accels, why = run.qemu_commands(req, img, rootfs, tests,
                                          name=f"harness:{rec.dir.name}")
    rec.meta(image=img.info, tests_selected=tests, qemu=cmds)
    printer.stage(f"Booting {img.info['release']} at {img.info['head'][:12]} with "
                  f"{'/'.join(accels)} ({why}); running: {', '.join(tests) or 'nothing'}")
    outcome: BootOutcome | None = None
    t0 = time.monotonic()
    try:
        outcome = boot(cmds, accels, rec.path("console.log"), req.profile.timeouts, cache_dir(),
                       echo=printer.verbose)
    finally:
        secs = time.monotonic() - t0
        # Tests: from the guest starting them to the end of that QEMU run; boot:
        # the rest, a failed KVM probe included.
        tests_secs = (outcome.seconds - outcome.guest_start
                      if outcome and outcome.guest_start is not None else 0.0)
        times.boot += secs - tests_secs
        times.tests += tests_secs
        if outcome is None:
            rec.stage("boot", "interrupted", secs)
    rec.stage("boot", outcome.end, secs, accel=outcome.accel, guest_start=outcome.guest_start)
    verdict = judging.judge_boot(outcome, tests, req.declarations(), jd.policy())
    rec.stage("verdict", verdict.word, reasons=verdict.reasons, output=verdict.output)
    return verdict
