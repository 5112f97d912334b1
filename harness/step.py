"""One step of patchcheck or bisect: the tree as checked out -> build -> boot -> verdict.

Unlike `build-and-test`, a step judges a commit that is neither the base
nor the whole series, so the verdict is its own (see `judge`): a test
result is fine when it is what the base or the series is declared to do
(or, for a test case the user named, when it passes). Each step measures
its build, rootfs, boot and test time separately: those are what an
incremental bisect costs.
"""

import time
from dataclasses import dataclass, field, replace

from harness import expectations, ktap, printer, run, splat
from harness.boot import BootOutcome, boot
from harness.errors import EXIT_INFRA, EXIT_OK, EXIT_TEST_FAILURE, ConfigError
from harness.ktap import FAILING, Status, TestResult
from harness.profile import cache_dir
from harness.report import split_console
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


@dataclass
class Verdict:
    code: int  # EXIT_OK, EXIT_TEST_FAILURE or EXIT_INFRA
    reasons: list[str] = field(default_factory=list)
    output: list[str] = field(default_factory=list)  # the failing test's (or splat's) lines

    @property
    def word(self) -> str:
        return {EXIT_OK: "pass", EXIT_TEST_FAILURE: "fail"}.get(self.code, "error")


def _leaves(node: TestResult) -> list[TestResult]:
    if not node.children:
        return [node]
    return [x for c in node.children for x in _leaves(c)]


def _crashed(name: str) -> TestResult:
    return TestResult(name=name, status=Status.CRASHED, number=None, directive="",
                      reason="never reported (guest crashed or hung)", children=[], log=[],
                      expected_count=None)


def _leaf_ok(prog: str, leaf: TestResult, jd: Judge, table: expectations.Table) -> bool:
    if jd.case:
        return leaf.status not in FAILING
    exp = expectations.lookup(table, prog, leaf.name if leaf.name != prog
                              else expectations.DEFAULT)
    return any(expectations.matches(leaf.status, exp.on(k)) for k in jd.kernels)


def judge(lines: list[str], end: str, jd: Judge, table: expectations.Table) -> Verdict:
    """The verdict on one boot's console: pass, fail (a test or a splat) or infra."""
    splats = splat.find_splats(lines)
    boot_part, guest_part = split_console(lines)
    if jd.expect_splat:
        if splats:
            s = splats[0]
            return Verdict(EXIT_TEST_FAILURE, [f"kernel splat ({s.kind}): {s.title}"],
                           list(s.lines))
        if end == "done":
            return Verdict(EXIT_OK, ["no kernel splat"])
        return Verdict(EXIT_INFRA, [f"no splat, but the guest did not finish ({end})"])
    if splats:
        s = splats[0]
        return Verdict(EXIT_TEST_FAILURE, [f"kernel splat ({s.kind}): {s.title}"
                                           for s in splats], list(s.lines))
    if guest_part is None:
        return Verdict(EXIT_INFRA, [f"the guest never started the tests ({end})"])

    bad: list[str] = []
    output: list[str] = []
    if jd.kunit:
        kunit = ktap.parse(boot_part)
        for doc in kunit.children:
            for name, leaf in ktap.walk(doc):
                if leaf is not doc and leaf.status in FAILING:
                    bad.append(f"kunit/{name}: {leaf.status.name}")
                    output = output or list(leaf.log)
    docs = [d for d in ktap.parse(guest_part).children if d.name == "guest"]
    by_name = {c.name: c for c in (docs[0].children if docs else [])}
    for prog in jd.tests or []:
        node = by_name.get(prog) or _crashed(prog)
        leaves = _leaves(node)
        if jd.case:
            leaves = [x for x in leaves if x.name == jd.case]
            if not leaves:
                if node.status in (Status.CRASHED, Status.TIMEOUT):  # died before it
                    bad.append(f"{prog}: {node.status.name} before {jd.case} reported"
                               + (f" ({node.reason})" if node.reason else ""))
                    output = output or list(node.log)
                    continue
                known = ", ".join(x.name for x in _leaves(node))
                raise ConfigError(f"{prog} has no test case {jd.case!r} (it has: {known})")
        for leaf in leaves:
            if not _leaf_ok(prog, leaf, jd, table):
                name = prog if leaf is node else f"{prog}/{leaf.name}"
                bad.append(f"{name}: {leaf.status.name}"
                           + (f" ({leaf.reason})" if leaf.reason else ""))
                output = output or list(leaf.log or node.log)
        # A program that timed out or crashed after its last case is a failure too.
        if not jd.case and node.children and node.status in (Status.TIMEOUT,
                                                                  Status.CRASHED):
            bad.append(f"{prog}: {node.status.name}")
    if bad:
        return Verdict(EXIT_TEST_FAILURE, bad, output)
    if end != "done":
        return Verdict(EXIT_INFRA, [f"the guest did not finish ({end})"])
    judged = jd.case or ", ".join(jd.tests) or "boot"
    return Verdict(EXIT_OK, [f"{judged}: pass"])


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
        if jd.tests:
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
    verdict = judge(outcome.lines, outcome.end, jd, req.declarations())
    rec.stage("verdict", verdict.word, reasons=verdict.reasons, output=verdict.output)
    return verdict
