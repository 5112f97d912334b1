"""judge.py: what makes a boot pass, fail or an infrastructure failure.

Each test here failed on main before the one judge existed (a skip or a
crash satisfied any declaration, detector and parser failures were silent,
a splat was not tied to its test); see the judge branch's report.
"""

import json
import xml.etree.ElementTree as ET

import pytest
from conftest import FIXTURES, V2_EXPECTATIONS
from conftest import write_report as write

from harness import expectations, ktap, splat
from harness import judge as judging
from harness.boot import BootOutcome
from harness.errors import EXIT_INFRA, EXIT_OK, EXIT_TEST_FAILURE
from harness.ktap import Status
from harness.results import RunRecord

OOM = "opener killed by signal 9 (OOM kill?), oom_kill 0 -> 1"
DECLARED_FAIL = f'prog:\n  t: {{vanilla: {{fail: "{OOM}"}}, series: pass}}\n'


def _outcome(lines: list[str], end: str = "done") -> BootOutcome:
    return BootOutcome(accel="tcg", end=end, seconds=3.0, first_output=0.5, lines=lines)


def _run(tmp_path, body: list[str], table: str = "", end: str = "done", tests=("prog",)):
    """report.write on a console whose guest part is BODY; (code, RunRecord)."""
    lines = ["[    0.100000] Linux version 6.12.117", "harness: running 1 guest test programs",
             "KTAP version 1", f"1..{len(tests)}", *body]
    if end == "done":
        lines.append("harness: guest tests done")
    rec = RunRecord(tmp_path / "r", "t")
    declared = expectations.parse(table, "e.yaml") if table else {}
    return write(rec, _outcome(lines, end), list(tests), "vanilla", declared), rec


def _statuses(rec: RunRecord) -> dict[str, str]:
    return {t["name"]: t["status"] for t in rec.data["tests"]}


def _reasons(rec: RunRecord) -> dict[str, str]:
    return {t["name"]: t["reason"] for t in rec.data["tests"]}


# --- skips ------------------------------------------------------------------------------------

def test_undeclared_skip_fails_the_run(tmp_path):
    code, rec = _run(tmp_path, ["  # Subtest: prog", "  1..1", "  ok 1 # SKIP t", "ok 1 prog"])
    assert code == EXIT_TEST_FAILURE
    assert _statuses(rec)["guest/prog/t"] == "FAIL"
    assert _reasons(rec)["guest/prog/t"].startswith("declared pass on vanilla, got skip")


def test_declared_skip_passes(tmp_path):
    code, rec = _run(tmp_path, ["  # Subtest: prog", "  1..1", "  ok 1 # SKIP t", "ok 1 prog"],
                     "prog:\n  t: {vanilla: skip, series: skip}\n")
    assert code == EXIT_OK and _statuses(rec)["guest/prog/t"] == "SKIP"


def test_program_with_no_tests_skipped_fails_the_run(tmp_path):
    code, rec = _run(tmp_path, ["  # Subtest: prog", "  1..0 # SKIP no memory controller",
                                "ok 1 prog # SKIP"])
    assert code == EXIT_TEST_FAILURE
    assert "got skip" in _reasons(rec)["guest/prog"]
    # Even when it exits 0: planning no tests is a skip.
    code, _ = _run(tmp_path, ["  # Subtest: prog", "  1..0 # SKIP no memory controller",
                              "ok 1 prog"])
    assert code == EXIT_TEST_FAILURE
    code, _ = _run(tmp_path, ["  # Subtest: prog", "  1..0 # SKIP no memory controller",
                              "ok 1 prog # SKIP"], "prog:\n  _default: {vanilla: skip}\n")
    assert code == EXIT_OK


# --- declared failures ------------------------------------------------------------------------

def test_declared_fail_showing_its_failure_passes(tmp_path):
    code, rec = _run(tmp_path, ["  # Subtest: prog", "  1..1", f"  # x.c:1:t:{OOM}",
                                "  not ok 1 t", "not ok 1 prog # exit code 1"], DECLARED_FAIL)
    assert code == EXIT_OK
    assert _statuses(rec)["guest/prog/t"] == "XFAIL"


def test_declared_fail_that_crashed_fails_the_run(tmp_path):
    # The case is killed before its result line (the OOM text is there, too).
    code, rec = _run(tmp_path, ["  # Subtest: prog", "  1..1", "  #  RUN f.t ...", f"  # {OOM}",
                                "not ok 1 prog # exit code 139"],
                     f'prog:\n  _default: {{vanilla: {{fail: "{OOM}"}}}}\n')
    assert code == EXIT_TEST_FAILURE
    (reason,) = [r for n, r in _reasons(rec).items() if n.startswith("guest/prog/")]
    assert reason.startswith(f"declared fail with {OOM!r} on vanilla, got CRASHED")


def test_declared_fail_that_timed_out_fails_the_run(tmp_path):
    code, rec = _run(tmp_path, ["  # Subtest: prog", "  1..1", f"  # {OOM}",
                                "  not ok 1 t # TIMEOUT", "not ok 1 prog # exit code 1"],
                     DECLARED_FAIL)
    assert code == EXIT_TEST_FAILURE
    assert _statuses(rec)["guest/prog/t"] == "TIMEOUT"
    assert "got TIMEOUT" in _reasons(rec)["guest/prog/t"]


def test_declared_fail_without_the_named_failure_fails_the_run(tmp_path):
    code, rec = _run(tmp_path, ["  # Subtest: prog", "  1..1", "  # open: errno 22 (EINVAL)",
                                "  not ok 1 t", "not ok 1 prog # exit code 1"], DECLARED_FAIL)
    assert code == EXIT_TEST_FAILURE
    reason = _reasons(rec)["guest/prog/t"]
    assert f"got fail, but its output does not show {OOM!r}" in reason
    summary = (rec.dir / "summary.txt").read_text()
    assert "| # open: errno 22 (EINVAL)" in summary  # what it showed instead


def test_declared_failure_text_must_be_in_that_tests_own_output(tmp_path):
    # The OOM line belongs to the case before it, not to t.
    code, _ = _run(tmp_path, ["  # Subtest: prog", "  1..2", f"  # {OOM}", "  not ok 1 a",
                              "  not ok 2 t", "not ok 1 prog # exit code 1"],
                   f'prog:\n  a: {{vanilla: {{fail: "{OOM}"}}}}\n'
                   f'  t: {{vanilla: {{fail: "{OOM}"}}}}\n')
    assert code == EXIT_TEST_FAILURE


def test_a_program_that_fails_although_every_case_passed_fails(tmp_path):
    code, rec = _run(tmp_path, ["  # Subtest: prog", "  1..1", "  ok 1 t",
                                "not ok 1 prog # exit code 1"])
    assert code == EXIT_TEST_FAILURE
    outside = "guest/prog/(outside its tests)"
    assert _statuses(rec)[outside] == "FAIL"
    assert _reasons(rec)[outside] == "every test passed, but the program failed (exit code 1)"
    # A program that hangs after its last case: TIMEOUT, in every output.
    code, rec = _run(tmp_path, ["  # Subtest: prog", "  1..1", "  ok 1 t",
                                "not ok 1 prog # TIMEOUT after 300s"])
    assert code == EXIT_TEST_FAILURE and _statuses(rec)[outside] == "TIMEOUT"
    assert "[TIMEOUT] (outside its tests): the program ended TIMEOUT" in (
        rec.dir / "summary.txt").read_text()


# --- detectors that fail --------------------------------------------------------------------

CLEAN = ["  # Subtest: prog", "  1..1", "  ok 1 t", "ok 1 prog"]


def test_splat_detector_exception_is_an_infrastructure_failure(tmp_path, monkeypatch):
    real = splat.classify

    def broken(message: str) -> str | None:
        if message == "Linux version 6.12.117":
            raise RuntimeError("detector bug")
        return real(message)

    monkeypatch.setattr(splat, "classify", broken)
    code, rec = _run(tmp_path, CLEAN)
    assert code == EXIT_INFRA
    assert rec.data["status"] == "error" and rec.data["exit_code"] == EXIT_INFRA
    assert "detector bug" in rec.data["infra_errors"][0]
    assert "splat detector" in rec.data["message"]
    assert "INFRASTRUCTURE: splat detector" in (rec.dir / "summary.txt").read_text()
    with pytest.raises(splat.DetectorError, match="detector bug"):
        splat.find_splats(["[    0.100000] Linux version 6.12.117"])


def test_ktap_parse_error_is_an_infrastructure_failure(tmp_path, monkeypatch):
    real = ktap._classify

    def broken(body: str):
        if body == "ok 1 t":
            raise RuntimeError("parser bug")
        return real(body)

    monkeypatch.setattr(ktap, "_classify", broken)
    code, rec = _run(tmp_path, CLEAN)
    assert code == EXIT_INFRA
    assert "KTAP parser (guest part)" in rec.data["infra_errors"][0]
    assert "parser bug" in rec.data["infra_errors"][0]
    assert "INFRASTRUCTURE: KTAP parser" in (rec.dir / "summary.txt").read_text()


# --- splats, tied to the case that was running ------------------------------------------------

SERIES_TESTS = ["file_charge", "file_concurrency", "file_stress", "smoke", "test_kmem",
                "test_memcontrol"]


def test_splat_inside_a_case_fails_that_case_in_every_output(tmp_path):
    """A real series console with a real WARNING inserted after
    `# RUN charge.covers_pipes` (tests/fixtures/console-series-splat-in-case-*)."""
    from harness.nightly import kcidb

    log = FIXTURES / "console-series-splat-in-case-6.12.117.log"
    lines = [ln for ln in log.read_text().splitlines() if not ln.startswith("# qemu")]
    table = expectations.load(V2_EXPECTATIONS, "x86_64")
    rec = RunRecord(tmp_path / "r", "t")
    code = write(rec, _outcome(lines), SERIES_TESTS, "series", table)
    assert code == EXIT_TEST_FAILURE  # the run-level failure stays
    assert [s["kind"] for s in rec.data["splats"]] == ["warning"]
    pipes = "guest/file_charge/charge.covers_pipes"
    statuses = _statuses(rec)
    assert statuses[pipes] == "FAIL"
    bad = {n for n, s in statuses.items() if s not in ("PASS", "XFAIL", "SKIP")}
    assert bad == {pipes}, bad  # no other case is blamed
    case = next(t for t in rec.data["tests"] if t["name"] == pipes)
    assert case["reason"].startswith("kernel splat (warning) at console line")
    assert any("WARNING: CPU: 1 PID: 87 at mm/memcontrol.c:3412" in ln for ln in case["log"])

    summary = (rec.dir / "summary.txt").read_text()
    assert "[FAIL] charge.covers_pipes: kernel splat (warning)" in summary
    assert "KERNEL SPLAT (warning)" in summary

    junit = ET.parse(rec.dir / "junit.xml").getroot()
    (failure,) = [c.find("failure") for c in junit.iter("testcase")
                  if c.get("name") == "charge.covers_pipes"]
    assert failure is not None and "mem_cgroup_charge_file" in failure.text

    cell = {"entry": {"id": "c", "profile": "default", "kernel": "series", "suite": "guest",
                      "status": "fail", "report": ["guest"]},
            "results": rec.data, "tests": rec.data["tests"], "rel": ""}
    doc = kcidb.build_document({"run_id": "r1"}, {"c": cell}, "")
    kcidb.validate(doc)
    (test,) = [t for t in doc["tests"] if t["path"].endswith("charge.covers_pipes")]
    assert test["status"] == "FAIL" and "kernel splat (warning)" in test["comment"]
    json.dumps(doc)


def _kmem(extra_before_result: list[str], after: list[str] = ()) -> list[str]:
    return ["harness: running 1 guest test programs", "KTAP version 1", "1..1",
            "  # Subtest: test_kmem", "  1..2", "  ok 1 test_kmem_basic",
            *extra_before_result, "  ok 2 test_kmem_memcg_deletion", *after,
            "ok 1 test_kmem", "harness: guest tests done"]


WARN = "[    2.000000] WARNING: CPU: 0 PID: 1 at fs/file.c:600 fd_install+0x1/0x2"


def _judged(lines: list[str]) -> judging.Verdict:
    return judging.judge(judging.read(lines), "done", ["test_kmem"], {},
                         judging.Policy(kernels=("series",)))


def test_splat_without_run_lines_goes_to_the_case_that_reports_next():
    v = _judged(_kmem([WARN]))
    kmem = v.root.children[-1].children[0]
    assert [(c.name, c.status) for c in kmem.children] == [
        ("test_kmem_basic", Status.PASS), ("test_kmem_memcg_deletion", Status.FAIL)]
    assert v.code == EXIT_TEST_FAILURE


def test_splat_after_the_last_case_fails_the_program_not_a_case():
    v = _judged(_kmem([], after=[WARN]))
    kmem = v.root.children[-1].children[0]
    assert [c.status for c in kmem.children[:2]] == [Status.PASS, Status.PASS]
    assert kmem.children[-1].name == "(outside its tests)"
    assert kmem.children[-1].status == Status.FAIL and kmem.status == Status.FAIL


def test_splat_after_the_tests_is_a_run_level_failure_only():
    lines = _kmem([])
    lines.insert(len(lines), WARN)  # after "harness: guest tests done"
    v = _judged(lines)
    assert v.code == EXIT_TEST_FAILURE and v.splats
    assert all(leaf.status == Status.PASS for leaf in judging.leaves(v.root))


def test_splat_when_the_guest_died_blames_the_case_left_running():
    lines = ["harness: running 1 guest test programs", "KTAP version 1", "1..1",
             "  # Subtest: file_charge", "  1..2", "  ok 1 a", "  #  RUN f.b ...", WARN]
    v = judging.judge(judging.read(lines), "timeout", ["file_charge"], {},
                      judging.Policy(kernels=("series",)))
    fc = v.root.children[-1].children[0]
    crashed = [c for c in judging.leaves(fc) if c.status == Status.CRASHED]
    assert crashed and crashed[0].reason.startswith("kernel splat (warning)")
    assert v.code == EXIT_TEST_FAILURE


# --- one judge, one policy --------------------------------------------------------------------

def test_a_step_accepts_what_either_kernel_is_declared_to_do():
    table = expectations.parse(DECLARED_FAIL, "e.yaml")
    lines = ["harness: running 1 guest test programs", "KTAP version 1", "1..1",
             "  # Subtest: prog", "  1..1", f"  # {OOM}", "  not ok 1 t",
             "not ok 1 prog # exit code 1", "harness: guest tests done"]
    both = judging.judge(judging.read(lines), "done", ["prog"], table, judging.Policy())
    assert both.code == EXIT_OK
    series = judging.judge(judging.read(lines), "done", ["prog"], table,
                           judging.Policy(kernels=("series",)))
    assert series.code == EXIT_TEST_FAILURE
    assert series.reasons == ["prog/t: FAIL (declared pass on series, got fail)"]


def test_a_named_case_that_skips_cannot_judge_a_commit():
    lines = ["harness: running 1 guest test programs", "KTAP version 1", "1..1",
             "  # Subtest: prog", "  1..1", "  ok 1 # SKIP t", "ok 1 prog",
             "harness: guest tests done"]
    v = judging.judge(judging.read(lines), "done", ["prog"], {}, judging.Policy(case="t"))
    assert v.code == EXIT_INFRA and "a skip tells nothing" in v.reasons[-1]
