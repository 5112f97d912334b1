import os
import subprocess
import time
from pathlib import Path

import pytest

from harness import bisect
from harness import judge as judging
from harness.bisect import (
    ABORT,
    BAD,
    GOOD,
    SKIP,
    Outcome,
    bisect_exit,
    drive,
    exit_code,
    parse_log,
    parse_test,
    render,
)
from harness.errors import (
    EXIT_BUILD,
    EXIT_INFRA,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TEST_FAILURE,
    EXIT_USAGE,
    ConfigError,
)
from harness.step import Judge


def judge(lines: list[str], end: str, jd: Judge, table) -> judging.Verdict:
    """A step's verdict on one console, as the pipeline judges it."""
    return judging.judge(judging.read(lines), end, jd.tests or [], table, jd.policy())

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def test_exit_code_mapping_follows_git_bisect_run():
    assert bisect_exit(EXIT_OK) == GOOD == 0
    assert bisect_exit(EXIT_TEST_FAILURE) == BAD == 1
    # cannot judge this commit: git skips it
    assert bisect_exit(EXIT_BUILD) == SKIP == 125
    assert bisect_exit(EXIT_INFRA) == SKIP
    # would recur on every commit: abort (git bisect run stops on >= 128)
    for code in (EXIT_USAGE, EXIT_INTERRUPTED, bisect.EXIT_INTERNAL, 7):
        assert bisect_exit(code) == ABORT >= 128


def test_parse_test():
    assert parse_test("file_charge") == ("file_charge", "")
    assert parse_test("file_charge:charge.follows_open_files") == (
        "file_charge", "charge.follows_open_files")
    assert parse_test("file_charge/charge.follows_open_files") == (
        "file_charge", "charge.follows_open_files")
    with pytest.raises(ConfigError):
        parse_test("a b")
    with pytest.raises(ConfigError):
        parse_test(":case")


FOUND = """git bisect start 'aaaa' 'bbbb'
# good: [1111111111111111111111111111111111111111] c1
git bisect good 1111111111111111111111111111111111111111
# bad: [2222222222222222222222222222222222222222] fs: double charge
git bisect bad 2222222222222222222222222222222222222222
# first bad commit: [2222222222222222222222222222222222222222] fs: double charge
"""

AMBIGUOUS = """# skip: [3333333333333333333333333333333333333333] c4
git bisect skip 3333333333333333333333333333333333333333
# only skipped commits left to test
# possible first bad commit: [4444444444444444444444444444444444444444] c5
# possible first bad commit: [3333333333333333333333333333333333333333] c4
"""


def test_parse_log():
    assert parse_log(FOUND) == ("2" * 40, "fs: double charge", [])
    assert parse_log(AMBIGUOUS) == ("", "", [("4" * 40, "c5"), ("3" * 40, "c4")])
    assert parse_log("") == ("", "", [])


def _step(n: int, commit: str, code: int, **times: float) -> dict:
    return {"metadata": {"step": n, "commit": commit, "subject": f"subject {n}"},
            "exit_code": code, "git": bisect_exit(code), "times": times,
            "stages": {"verdict": {"reasons": ["file_charge/charge.x: FAIL"],
                                   "output": ["# Expected 1 == 2"]}},
            "dir": f"/r/steps/{n}"}


def test_exit_code_of_the_bisect():
    found = Outcome(0, FOUND, "2" * 40, "x")
    assert exit_code(found, []) == EXIT_OK
    skips = Outcome(2, AMBIGUOUS, candidates=[("4" * 40, "c5")])
    assert exit_code(skips, [_step(1, "3" * 40, EXIT_BUILD)]) == EXIT_BUILD
    assert exit_code(skips, [_step(1, "3" * 40, EXIT_BUILD),
                             _step(2, "4" * 40, EXIT_INFRA)]) == EXIT_INFRA
    aborted = Outcome(1, "")
    assert exit_code(aborted, [_step(1, "5" * 40, EXIT_USAGE)]) == EXIT_USAGE
    assert exit_code(aborted, [_step(1, "5" * 40, EXIT_INTERRUPTED)]) == EXIT_INTERRUPTED
    assert exit_code(aborted, [_step(1, "5" * 40, bisect.EXIT_INTERNAL)]) == bisect.EXIT_INTERNAL


def test_render_names_the_patch_the_output_the_log_and_the_cost():
    steps = [_step(1, "1" * 40, EXIT_OK, build=40.0, rootfs=0.5, boot=12.0, tests=30.0),
             _step(2, "3" * 40, EXIT_BUILD, build=20.0),
             _step(3, "2" * 40, EXIT_TEST_FAILURE, build=35.0, rootfs=0.5, boot=12.0,
                   tests=31.0)]
    text = render(Outcome(0, FOUND, "2" * 40, "fs: double charge"), steps,
                  {"2" * 40: "0003-fs-double-charge.patch"}, "9" * 40, 200.0)
    assert text.startswith("First bad commit: 222222222222 fs: double charge  "
                           "[0003-fs-double-charge.patch]\n  file_charge/charge.x: FAIL\n"
                           "    | # Expected 1 == 2\n  results: /r/steps/3\n")
    assert "git bisect log:\n  git bisect start 'aaaa' 'bbbb'" in text
    table = text.split("\n\n")[-1].splitlines()
    assert table[0].split() == ["step", "commit", "verdict", "build", "rootfs", "boot",
                                "tests", "total", "subject"]
    assert table[1].split()[:8] == ["1", "111111111111", "good", "40.0s", "0.5s", "12.0s",
                                    "30.0s", "82.5s"]
    assert table[2].split()[:3] == ["2", "333333333333", "skip"]
    assert table[3].split()[2] == "bad"
    assert table[4].split()[:8] == ["all", "3", "steps", "95.0s", "1.0s", "24.0s", "61.0s",
                                    "181.0s"]
    assert "(bisect wall time 200.0s)" in table[4]


def test_render_when_only_skipped_commits_are_left():
    text = render(Outcome(2, AMBIGUOUS, candidates=parse_log(AMBIGUOUS)[2]), [], {}, "9" * 40,
                  1.0)
    assert text.startswith("No single first bad commit: only skipped commits are left; it is "
                           "one of:\n  444444444444 c5\n  333333333333 c4\n")


def test_render_when_the_culprit_is_the_bad_end_and_never_ran():
    text = render(Outcome(0, FOUND, "2" * 40, "x"), [], {}, "2" * 40, 1.0)
    assert "the --bad revision itself" in text


# --- the driver, with a shell script as the step --------------------------------------


def _repo(tmp_path: Path, n: int) -> tuple[Path, list[str]]:
    repo = tmp_path / "repo"
    repo.mkdir()
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@t")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    shas = []
    for i in range(n):
        (repo / "v").write_text(f"{i}\n")
        subprocess.run(["git", "-C", str(repo), "add", "v"], check=True)
        subprocess.run(["git", "-C", str(repo), "commit", "-qm", f"c{i}"], check=True, env=env)
        shas.append(subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], text=True,
                                   capture_output=True, check=True).stdout.strip())
    return repo, shas


def _script(tmp_path: Path, body: str) -> list[str]:
    s = tmp_path / "step.sh"
    s.write_text("#!/bin/sh\nv=$(cat v)\n" + body)
    s.chmod(0o755)
    return [str(s)]


def test_drive_finds_the_first_bad_commit_across_skips_and_resets(tmp_path):
    repo, shas = _repo(tmp_path, 10)
    # c3 is the culprit; c4..c6, where git looks first, cannot be tested (skip).
    # (A skip right before the culprit would leave git unable to tell.)
    cmd = _script(tmp_path, 'case $v in 4|5|6) exit 125;; esac\n[ "$v" -ge 3 ] && exit 1\n'
                  "exit 0\n")
    out = drive(repo, shas[0], shas[-1], cmd, dict(os.environ), tmp_path / "run.log")
    assert (out.first_bad, out.subject) == (shas[3], "c3")
    assert "# first bad commit:" in out.log and "git bisect skip" in out.log
    assert not (repo / ".git" / "BISECT_START").exists()
    assert (repo / "v").read_text() == "9\n"  # back where it started
    assert "is the first bad commit" in (tmp_path / "run.log").read_text()


def test_drive_reports_candidates_when_skips_hide_the_culprit(tmp_path):
    repo, shas = _repo(tmp_path, 6)
    cmd = _script(tmp_path, 'case $v in 2|3) exit 125;; esac\n[ "$v" -ge 3 ] && exit 1\n'
                  "exit 0\n")
    out = drive(repo, shas[0], shas[-1], cmd, dict(os.environ), tmp_path / "run.log")
    assert out.first_bad == ""
    assert {shas[2], shas[3]} <= {s for s, _ in out.candidates}
    assert not (repo / ".git" / "BISECT_START").exists()


def test_drive_resets_after_an_abort_and_a_stale_bisect(tmp_path):
    repo, shas = _repo(tmp_path, 6)
    subprocess.run(["git", "-C", str(repo), "bisect", "start", shas[-1], shas[0]],
                   capture_output=True, check=True)  # left behind by a killed run
    out = drive(repo, shas[0], shas[-1], _script(tmp_path, "exit 255\n"), dict(os.environ),
                tmp_path / "run.log")
    assert out.first_bad == "" and out.candidates == [] and out.returncode != 0
    assert not (repo / ".git" / "BISECT_START").exists()
    assert (repo / "v").read_text() == "5\n"


def test_drive_rejects_a_bad_range(tmp_path):
    repo, shas = _repo(tmp_path, 3)
    with pytest.raises(ConfigError, match="git bisect start"):
        drive(repo, shas[2], shas[2], _script(tmp_path, "exit 0\n"), dict(os.environ),
              tmp_path / "run.log")
    assert not (repo / ".git" / "BISECT_START").exists()


# --- the step's verdict ---------------------------------------------------------------


def _console() -> list[str]:
    return (FIXTURES / "console-vanilla-all-6.12.117.log").read_text().splitlines()


def test_judge_named_case_is_judged_raw():
    lines = _console()
    v = judge(lines, "done", Judge(["file_charge"], case="over_limit.open_fails_with_enomem"),
              {})
    assert v.code == EXIT_TEST_FAILURE
    assert v.reasons == ["file_charge/over_limit.open_fails_with_enomem: FAIL"]
    assert v.output
    ok = judge(lines, "done", Judge(["file_charge"], case="charge.follows_open_files"), {})
    assert ok.code == EXIT_OK
    with pytest.raises(ConfigError, match="no test case 'nope'"):
        judge(lines, "done", Judge(["file_charge"], case="nope"), {})


def test_judge_program_uses_the_declarations_of_either_kernel():
    from harness.expectations import Expectation, failing

    oom = failing("oom_kill 0 -> 1")  # what the captured vanilla failures show
    table = {"file_charge": {"_default": Expectation(),
                             "over_limit.open_fails_with_enomem": Expectation(vanilla=oom),
                             "over_limit.parent_limit_fails_open_in_child":
                                 Expectation(vanilla=oom)}}
    lines = _console()
    assert judge(lines, "done", Judge(["file_charge"]), table).code == EXIT_OK
    strict = judge(lines, "done", Judge(["file_charge"], kernels=("series",)), table)
    assert strict.code == EXIT_TEST_FAILURE and len(strict.reasons) == 2


def test_judge_infra_and_splats():
    lines = _console()
    guest = lines.index(next(ln for ln in lines if "harness: running" in ln))
    cut = judge(lines[:guest], "no_output", Judge(["smoke"]), {})
    assert cut.code == EXIT_INFRA
    assert judge(lines, "done", Judge([], expect_splat=True), {}).code == EXIT_OK
    panic = (FIXTURES / "console-sysrq-panic-6.12.117.log").read_text().splitlines()
    assert judge(panic, "exited", Judge([], expect_splat=True), {}).code == EXIT_TEST_FAILURE
    assert judge(panic, "exited", Judge(["smoke"]), {}).code == EXIT_TEST_FAILURE


def test_drive_ends_a_step_that_hangs_after_the_timeout(tmp_path):
    repo, shas = _repo(tmp_path, 4)
    t0 = time.monotonic()
    out = drive(repo, shas[0], shas[-1], _script(tmp_path, "exec sleep 300\n"),
                dict(os.environ), tmp_path / "run.log", timeout=2)
    assert time.monotonic() - t0 < 30
    assert out.first_bad == "" and out.returncode != 0
    assert not (repo / ".git" / "BISECT_START").exists()
    assert subprocess.run(["pgrep", "-f", str(tmp_path / "step.sh")],
                          capture_output=True, timeout=10).returncode == 1  # nothing left
