"""The reproducer line of a failed run (summary.txt, results.json)."""

import json
import shlex

import pytest
from conftest import write_report as write

from harness import cli, reproduce, run
from harness.boot import BootOutcome
from harness.errors import EXIT_BUILD, EXIT_TEST_FAILURE, BuildError
from harness.profile import project_dir
from harness.results import RunRecord


def _cmd(*argv: str, kernel: str = "") -> str:
    args = cli.build_parser().parse_args(list(argv))
    req_kernel = kernel or ("vanilla" if getattr(args, "no_series", False) else "series")
    return shlex.join(reproduce.command(args.parser, args, args.command, req_kernel))


def test_keeps_the_flags_that_matter_and_drops_the_rest():
    assert _cmd("test", "--tests", "file_charge,smoke", "--no-series", "--smp", "3",
                "--accel", "tcg", "--results-dir", "/tmp/x", "-v", "-j", "7") == (
        "harness build-and-test --profile default --no-series --tests file_charge,smoke "
        "--accel tcg --smp 3")


def test_a_fresh_checkout_has_no_image_so_test_becomes_build_and_test():
    assert _cmd("test").startswith("harness build-and-test --profile default")
    assert _cmd("build", "--profile", "debug") == "harness build --profile debug"
    assert _cmd("build-and-test", "--icount", "--timeout", "900") == (
        "harness build-and-test --profile default --icount --timeout 900")


def test_paths_are_relative_to_the_project_when_inside_it(tmp_path):
    frag = tmp_path / "extra.config"
    got = _cmd("build", "--series", str(project_dir() / "patches" / "series"),
               "--fragment", str(frag), "--fragment", "kconfigs/debug.config",
               "--source", str(tmp_path), "--rev", "v6.12", "--profile",
               str(project_dir() / "profiles" / "debug.yaml"))
    assert got == (f"harness build --profile profiles/debug.yaml --source {tmp_path} "
                   f"--rev v6.12 --series patches/series --fragment {frag} "
                   "--fragment kconfigs/debug.config")


def test_each_run_of_a_matrix_reproduces_as_one_build_and_test():
    assert _cmd("matrix", "--tests", "smoke", kernel="vanilla") == (
        "harness build-and-test --profile default --no-series --tests smoke")
    assert _cmd("matrix", "--tests", "smoke", kernel="series") == (
        "harness build-and-test --profile default --tests smoke")


def test_command_specific_flags_are_kept_cache_flags_are_not():
    assert _cmd("bench", "--repeat", "5", "--no-build") == (
        "harness bench --profile default --repeat 5")
    assert _cmd("patchcheck", "--depth", "build") == (
        "harness patchcheck --profile default --depth build")
    assert _cmd("bisect", "--good", "base", "--bad", "series", "--test", "file_charge:x") == (
        "harness bisect --profile default --good base --bad series --test file_charge:x")


META = {"reproduce": "harness build-and-test --profile default --tests file_charge",
        "base": "a" * 40, "base_version": "6.12.117", "series_hash": "b" * 64,
        "source": "/usr/src/linux-source-6.12.tar.xz (6.12.117)"}


def test_the_line_names_target_base_and_series():
    data = {"metadata": dict(META)}
    text = reproduce.record(data)
    assert text == ("reproduce: harness build-and-test --profile default --tests file_charge"
                    f"  # target x86_64, base 6.12.117 at {'a' * 40}, series {'b' * 64}")
    assert data["reproduce"]["command"] == META["reproduce"]
    assert data["reproduce"]["target"] == "x86_64"
    assert data["reproduce"]["base_version"] == "6.12.117"
    # What follows the command is a shell comment: the line pastes into a shell.
    assert shlex.split(text.removeprefix("reproduce: "), comments=True) == \
        shlex.split(META["reproduce"])


def test_harness_test_has_the_identity_in_the_image_and_vanilla_has_no_series():
    image = {k: META[k] for k in ("base", "base_version")} | {"series_hash": "",
                                                               "kernel": "vanilla"}
    data = {"metadata": {"reproduce": "harness build-and-test --no-series", "image": image}}
    assert reproduce.record(data).endswith(f"base 6.12.117 at {'a' * 40}, no series")


def test_a_run_that_stopped_before_reading_the_series_does_not_claim_none():
    data = {"metadata": {"reproduce": "harness build", "kernel": "series"}}
    assert reproduce.record(data) == "reproduce: harness build  # target x86_64"


def test_no_command_recorded_no_reproducer():
    data = {"metadata": {}}
    assert reproduce.record(data) == "" and "reproduce" not in data


FAILING_GUEST = [
    "[    0.1] Linux version 6.12", "harness: running 1 guest test programs",
    *"KTAP version 1\n1..1\n  # Subtest: smoke\n  1..1\n  not ok 1 a\nnot ok 1 smoke".split("\n"),
    "harness: guest tests done"]


def test_a_failed_test_run_reports_its_reproducer(tmp_path):
    rec = RunRecord(tmp_path, "t")
    rec.meta(**META)
    outcome = BootOutcome(accel="tcg", end="done", seconds=1.0, lines=FAILING_GUEST)
    assert write(rec, outcome, ["smoke"], "series", {}) == EXIT_TEST_FAILURE
    last = (rec.dir / "summary.txt").read_text().splitlines()[-1]
    assert last.startswith(f"reproduce: {META['reproduce']}  # target x86_64")
    saved = json.loads((rec.dir / "results.json").read_text())
    assert saved["reproduce"]["line"] == last


def test_a_passing_run_has_no_reproducer(tmp_path):
    rec = RunRecord(tmp_path, "t")
    rec.meta(**META)
    lines = [x.replace("not ok", "ok") for x in FAILING_GUEST]
    outcome = BootOutcome(accel="tcg", end="done", seconds=1.0, lines=lines)
    assert write(rec, outcome, ["smoke"], "series", {}) == 0
    assert "reproduce" not in (rec.dir / "summary.txt").read_text()
    assert "reproduce" not in json.loads((rec.dir / "results.json").read_text())


@pytest.fixture
def failing_build(monkeypatch):
    def build_kernel(req: run.Request, rec: RunRecord) -> run.KernelImage:
        rec.meta(base="c" * 40, base_version="6.12.117", series_hash="d" * 64)
        raise BuildError("fs/file.c:10: error: expected ';'")
    monkeypatch.setattr(run, "build_kernel", build_kernel)


def test_a_run_that_fails_before_the_report_still_gets_summary_and_reproducer(
        tmp_path, failing_build, capsys):
    code = cli.main(["build-and-test", "--tests", "smoke", "--smp", "2",
                     "--results-dir", str(tmp_path)])
    assert code == EXIT_BUILD
    (run_dir,) = [p for p in tmp_path.iterdir() if not p.is_symlink()]
    summary = (run_dir / "summary.txt").read_text().splitlines()
    assert summary[0] == "ERROR (exit 3): fs/file.c:10: error: expected ';'"
    want = ("reproduce: harness build-and-test --profile default --tests smoke --smp 2"
            f"  # target x86_64, base 6.12.117 at {'c' * 40}, series {'d' * 64}")
    assert summary[1] == want
    data = json.loads((run_dir / "results.json").read_text())
    assert data["reproduce"]["line"] == want and data["exit_code"] == EXIT_BUILD
    assert want in capsys.readouterr().out


def test_reproducer_of_a_profile_file_outside_the_project_is_absolute(tmp_path):
    prof = tmp_path / "p.yaml"
    prof.write_text("")
    assert _cmd("build", "--profile", str(prof)) == f"harness build --profile {prof}"
