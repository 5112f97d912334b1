"""One step of patchcheck or bisect: the tree as checked out -> build -> boot -> verdict.

The boot and judging are the one test pipeline's (pipeline.py); a step
differs only in its policy (`Judge`): it judges a commit that is neither the
base nor the whole series, so a test result is fine when it is what the
base or the series is declared to do (or, for a test case the user named,
when it passes). Each step measures
its build, rootfs, boot and test time separately: those are what an
incremental bisect costs.
"""

import time
from dataclasses import dataclass

from harness import expectations, pipeline, run
from harness import judge as judging
from harness.judge import Verdict
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


@dataclass
class StepTimes(pipeline.Times):
    build: float = 0.0  # config + make

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
    """The one test pipeline on IMG with JD's tests and policy (a declared-flaky
    failure gets its retry boot, as in `harness test`); timings go to TIMES."""
    verdict = pipeline.run_tests(req, img, rec, tests=jd.tests, policy=jd.policy(),
                                 times=times).verdict
    rec.stage("verdict", verdict.word, reasons=verdict.reasons, output=verdict.output)
    return verdict
