"""pipeline.py: one run of the guest tests, whatever transport carries them.

The transport here is a fake that returns scripted consoles: what is tested
is the pipeline's own logic (selection, judging, the flaky retry, what is
recorded), which is the same for the console and SSH transports. The real
transports are tested by booting real kernels (test_integration.py,
test_ssh_integration.py).
"""

from pathlib import Path

import pytest

from harness import cli, pipeline, run
from harness.boot import GUEST_DONE, GUEST_START, BootOutcome
from harness.errors import EXIT_OK, EXIT_TEST_FAILURE
from harness.images import KernelImage
from harness.judge import Policy
from harness.profile import Profile
from harness.results import RunRecord
from harness.transports import FIRST, RETRY, Attempt
from harness.transports.ssh import Ssh

TABLE = """\
flaky:
  passes_when_alone: {vanilla: pass, series: pass, flaky: fails unless it runs alone}
pass:
  _default: {vanilla: pass, series: pass}
"""


def _program(i: int, name: str, case: str, ok: bool) -> list[str]:
    word = "ok" if ok else "not ok"
    return [f"  # Subtest: {name}", "  TAP version 13", "  1..1",
            *([] if ok else ["  # not alone"]), f"  {word} 1 {case}", f"{word} {i} {name}"]


def _console(tests: list[str], alone_passes: bool = True, end: str = "done") -> list[str]:
    """A console like flaky.c's: `flaky` fails unless it is the only program."""
    lines = ["[    0.100000] Linux version 6.12.117", f"{GUEST_START}{len(tests)} guest test "
             "programs", "KTAP version 1", f"1..{len(tests)}"]
    for i, name in enumerate(tests, 1):
        ok = name != "flaky" or (len(tests) == 1 and alone_passes)
        lines += _program(i, name, "passes_when_alone" if name == "flaky" else "t", ok)
    return lines + ([GUEST_DONE] if end == "done" else [])


class FakeTransport:
    name = "fake"

    def __init__(self, alone_failures: int = 0) -> None:
        self.alone_failures = alone_failures  # boots alone that still fail, then passes
        self.boots: list[tuple[list[str], Attempt]] = []

    def boot(self, req, img, rootfs, tests, rec, attempt) -> BootOutcome:
        self.boots.append((list(tests), attempt))
        alone = len(self.boots) - 1
        lines = _console(tests, alone > self.alone_failures)
        rec.path(attempt.file("console")).write_text("\n".join(lines) + "\n")
        return BootOutcome(accel="tcg", end="done", seconds=2.0, first_output=0.1,
                           guest_start=1.0, lines=lines)


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    rootfs = tmp_path / "rootfs"
    (rootfs / "tests").mkdir(parents=True)
    for prog in ("flaky", "pass", "bench_x"):
        (rootfs / "tests" / prog).write_text("")
    monkeypatch.setattr(run, "prepare_rootfs", lambda req, img, rec: rootfs)
    (tmp_path / "e.yaml").write_text(TABLE)
    req = run.Request(profile=Profile(series="", tests=["flaky", "pass"],
                                      expectations=str(tmp_path / "e.yaml")),
                      results_root=tmp_path / "results")
    img = KernelImage(tmp_path / "bzImage", {"release": "6.12.117", "head": "a" * 40})
    return req, img, RunRecord(tmp_path / "results", "t")


def test_a_declared_flaky_failure_is_retried_alone_over_any_transport(setup):
    req, img, rec = setup
    fake = FakeTransport()
    assert pipeline.test_kernel(req, img, rec, fake) == EXIT_OK
    assert fake.boots == [(["flaky", "pass"], FIRST), (["flaky"], RETRY)]
    assert rec.data["flaky"] == ["flaky/passes_when_alone"]
    assert rec.data["stages"]["boot"]["status"] == "done"
    assert rec.data["stages"]["retry"]["status"] == "done"
    assert rec.data["metadata"]["tests_selected"] == ["flaky", "pass"]
    assert rec.data["metadata"]["tests_retry"] == ["flaky"]
    assert (rec.dir / "console-retry.log").is_file()
    assert "[FLAKY] passes_when_alone" in (rec.dir / "summary.txt").read_text()


def test_a_flaky_failure_gets_up_to_three_retries(setup):
    req, img, rec = setup
    fake = FakeTransport(alone_failures=2)
    assert pipeline.test_kernel(req, img, rec, fake) == EXIT_OK
    assert [a.stage for _, a in fake.boots] == ["boot", "retry", "retry2", "retry3"]
    assert rec.data["flaky"] == ["flaky/passes_when_alone"]
    assert rec.data["metadata"]["tests_retry3"] == ["flaky"]
    assert (rec.dir / "console-retry3.log").is_file()
    summary = (rec.dir / "summary.txt").read_text()
    assert "pass on retry 3" in summary
    # Every failed attempt's output stays in the record.
    assert summary.count("not alone") >= 2


def test_a_flaky_failure_that_fails_every_retry_fails_the_run(setup):
    req, img, rec = setup
    fake = FakeTransport(alone_failures=pipeline.FLAKY_RETRIES)
    assert pipeline.test_kernel(req, img, rec, fake) == EXIT_TEST_FAILURE
    assert len(fake.boots) == 1 + pipeline.FLAKY_RETRIES and rec.data["flaky"] == []


def test_a_failure_not_declared_flaky_gets_no_retry(setup, tmp_path):
    req, img, rec = setup
    (tmp_path / "e.yaml").write_text(TABLE.replace(", flaky: fails unless it runs alone", ""))
    fake = FakeTransport()
    assert pipeline.test_kernel(req, img, rec, fake) == EXIT_TEST_FAILURE
    assert len(fake.boots) == 1 and "retry" not in rec.data["stages"]


def test_a_caller_that_parses_the_console_itself_can_opt_out(setup):
    # bench: its own file names, no retry, and the console lines in the verdict.
    req, img, rec = setup
    fake = FakeTransport()
    attempt = Attempt("boot-vanilla-1", "-vanilla-1")
    res = pipeline.run_tests(req, img, rec, fake, retry=False, attempt=attempt,
                             policy=Policy(kernels=("vanilla",), kunit=False))
    assert fake.boots == [(["flaky", "pass"], attempt)] and res.verdict.code != EXIT_OK
    assert res.verdict.outcome is res.boots[0] and "ok 2 pass" in res.verdict.outcome.lines
    assert (rec.dir / "console-vanilla-1.log").is_file()
    assert rec.data["stages"]["boot-vanilla-1"]["status"] == "done"


def test_selection_none_is_the_profiles_and_empty_is_boot_only(setup):
    req, img, rec = setup
    req = run.Request(profile=Profile(series="", expectations=req.profile.expectations))
    fake = FakeTransport()
    times = pipeline.Times()
    assert pipeline.run_tests(req, img, rec, fake, times=times).tests == ["flaky", "pass"]
    assert pipeline.run_tests(req, img, rec, fake, tests=[]).tests == []
    assert fake.boots[-1][0] == []
    # From the guest starting the tests to QEMU's end (1 s of each fake boot; the
    # retry included), as a bisect step shows them.
    assert times.tests == pytest.approx(2.0)


def test_an_interrupted_boot_is_recorded(setup):
    req, img, rec = setup

    class Interrupted(FakeTransport):
        def boot(self, *args):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pipeline.run_tests(req, img, rec, Interrupted())
    assert rec.data["stages"]["boot"]["status"] == "interrupted"


def test_test_and_build_and_test_over_ssh_run_the_pipeline(monkeypatch):
    """--transport ssh is the same pipeline (so the same flaky retry) with the SSH
    transport; the console is the default."""
    calls = []
    monkeypatch.setattr(pipeline, "test_kernel", lambda *a: calls.append(a) or EXIT_OK)
    for command in ("test", "build-and-test"):
        for transport, kind in (("ssh", Ssh), ("console", type(pipeline.CONSOLE))):
            args = cli.build_parser().parse_args([command, "--transport", transport])
            assert cli._tester(args)("req", "img", "rec") == EXIT_OK
            assert isinstance(calls[-1][3] if len(calls[-1]) > 3 else pipeline.CONSOLE, kind)
