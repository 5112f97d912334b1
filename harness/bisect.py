"""`harness bisect`: find the commit that broke a guest test, with `git bisect run`.

The bisect runs in the harness's own tree (the cached source repository, or
the scratch clone of --source), never in the user's checkout. The parent
holds the tree lock for the whole bisect; `git bisect run` starts
`python -m harness _bisect-step STATE` per commit, and that child skips the
lock because HARNESS_TREE_LOCKED names the lock its parent holds (taking it
again would wait forever). Using git's own `bisect run` rather than an
in-process good/bad/skip loop keeps git's exit-code protocol, its skip
handling and its log exactly as developers know them, and the step is a
command anyone can rerun by hand on a commit.

Step exit codes (git bisect run): tests pass 0 (good), tests fail or a
splat 1 (bad), build or boot/infrastructure failure 125 (skip: this commit
cannot be judged), anything else 255 (abort: a usage error, an
interruption or a harness bug would recur on every commit).
"""

import json
import os
import pickle
import re
import signal
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import harness
from harness import printer, run, selection, step
from harness.errors import (
    EXIT_BUILD,
    EXIT_INFRA,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TEST_FAILURE,
    ConfigError,
    HarnessError,
)
from harness.gitutil import NO_AUTO_GC, git, rev_parse
from harness.lock import locked
from harness.profile import Profile, cache_dir, project_path
from harness.results import RunRecord
from harness.stages.series import Series, apply_series, read_series
from harness.stages.source import prepare_source

GOOD, BAD, SKIP, ABORT = 0, 1, 125, 255
LOCK_ENV = "HARNESS_TREE_LOCKED"
STEP_LABEL = "bisect"  # images/bisect/: a bisect never overwrites the series image
_GIT_WORD = {GOOD: "good", BAD: "bad", SKIP: "skip"}
_LOG_COMMIT = re.compile(r"^# (first bad commit|possible first bad commit): \[([0-9a-f]{40})\] "
                         r"?(.*)$")


def bisect_exit(code: int) -> int:
    """Map a harness exit code to what `git bisect run` expects from a step."""
    if code == EXIT_OK:
        return GOOD
    if code == EXIT_TEST_FAILURE:
        return BAD
    if code in (EXIT_BUILD, EXIT_INFRA):
        return SKIP
    return ABORT


def parse_test(spec: str) -> tuple[str, str]:
    """`PROG` or `PROG:CASE` (also `PROG/CASE`) -> (program, case or "")."""
    m = re.match(r"^([^:/\s]+)(?:[:/](\S+))?$", spec.strip())
    if not m:
        raise ConfigError(f"--test {spec!r}: expected PROGRAM or PROGRAM:TEST_CASE")
    return m.group(1), m.group(2) or ""


# --- the step: one commit, in a child of `git bisect run` -------------------


@dataclass
class StepState:
    """What the parent hands each step (pickled: it is our own file)."""

    request: run.Request
    judge: step.Judge
    steps_dir: Path
    verbose: bool = False


def step_main(argv: list[str]) -> int:
    """Entry point of `python -m harness _bisect-step STATE`; returns git's code."""
    if len(argv) != 1:
        printer.error("usage: harness _bisect-step STATE (run by harness bisect)")
        return ABORT
    code = run_step(Path(argv[0]))
    git_code = bisect_exit(code)
    printer.stage(f"bisect step: harness exit {code} -> git bisect "
                  f"{_GIT_WORD.get(git_code, 'abort')} ({git_code})")
    return git_code


def run_step(state_path: Path) -> int:
    """Build, boot and judge HEAD of the tree; record it; return a harness exit code."""
    state: StepState = pickle.loads(state_path.read_bytes())
    printer.verbose = state.verbose
    req = replace(state.request, tree_locked=os.environ.get(LOCK_ENV)
                  == str(run.tree_lock_path(state.request)))
    if not req.tree_locked:
        printer.warn(f"{LOCK_ENV} is not set: not run by harness bisect, taking the tree lock")
    n = len(_step_dirs(state.steps_dir)) + 1
    src = prepare_source(req.profile.source, cache_dir())
    head = rev_parse(src.repo, "HEAD")
    subject = git(src.repo, "log", "-1", "--format=%s", head).stdout.strip()
    rec = RunRecord(state.steps_dir, f"{n:02d}-{head[:12]}")
    rec.meta(step=n, commit=head, subject=subject)
    printer.stage(f"bisect step {n}: {head[:12]} {subject}")
    times = step.StepTimes()
    verdict: step.Verdict | None = None
    message = ""
    code = EXIT_INTERNAL
    try:
        img = step.build(req, rec, times)
        verdict = step.boot_and_judge(req, img, rec, state.judge, times)
        code = verdict.code
        message = "; ".join(verdict.reasons)
        printer.info(f"verdict: {verdict.word}: {message}")
    except HarnessError as e:
        code, message = e.exit_code, str(e)
        printer.error(message)
    except KeyboardInterrupt:
        code, message = EXIT_INTERRUPTED, "interrupted"
    except Exception as e:  # a bug: abort the bisect rather than call the commit bad
        message = traceback.format_exc()
        printer.error(f"internal error:\n{message}")
        rec.internal_error(EXIT_INTERNAL, e)
    finally:
        rec.finish("pass" if code == EXIT_OK else "error" if code == EXIT_INTERNAL else "fail",
                   code, message, times=asdict(times), git=bisect_exit(code))
        printer.info(_times_line(times))
    return code


def _times_line(t: step.StepTimes) -> str:
    return (f"step time {t.total:.1f}s: build {t.build:.1f}s, rootfs {t.rootfs:.1f}s, "
            f"boot {t.boot:.1f}s, tests {t.tests:.1f}s")


# --- the driver: git bisect start/run/log/reset -------------------------------


@dataclass
class Outcome:
    returncode: int  # of `git bisect run`
    log: str  # `git bisect log`
    first_bad: str = ""
    subject: str = ""
    candidates: list[tuple[str, str]] = field(default_factory=list)  # only skips left


def parse_log(log: str) -> tuple[str, str, list[tuple[str, str]]]:
    """(first bad commit, its subject, possible first bad commits) from `git bisect log`."""
    first, subject, maybe = "", "", []
    for line in log.splitlines():
        m = _LOG_COMMIT.match(line)
        if m and m.group(1) == "first bad commit":
            first, subject = m.group(2), m.group(3)
        elif m:
            maybe.append((m.group(2), m.group(3)))
    return first, subject, maybe


def _stop(proc: subprocess.Popen) -> None:
    """End `git bisect run` and its step; wait until the step has killed make/QEMU."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)  # the step turns it into KeyboardInterrupt
    except ProcessLookupError:
        return
    proc.wait()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def drive(repo: Path, good: str, bad: str, cmd: list[str], env: dict[str, str],
          log_path: Path, timeout: float | None = None) -> Outcome:
    """git bisect start BAD GOOD; git bisect run CMD (ended after TIMEOUT seconds);
    always git bisect reset."""
    if (repo / ".git" / "BISECT_START").exists():
        printer.warn(f"a bisect left behind in {repo} (a killed run?): resetting it")
        git(repo, "bisect", "reset", check=False)
    start = git(repo, "bisect", "start", bad, good, check=False)
    if start.returncode != 0:
        git(repo, "bisect", "reset", check=False)
        raise ConfigError(f"git bisect start {bad[:12]} {good[:12]} failed:\n"
                          f"{(start.stdout + start.stderr).strip()}")
    rc = 0
    try:
        with open(log_path, "w") as log:
            log.write(start.stdout)
            # An already decided bisect (GOOD is BAD's parent) needs no step.
            if "is the first bad commit" not in start.stdout:
                # Its own session: Ctrl-C reaches only us, and _stop() ends the
                # step in order (SIGTERM, wait, then SIGKILL).
                proc = subprocess.Popen(["git", *NO_AUTO_GC, "-C", str(repo), "bisect", "run",
                                         *cmd],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True, errors="replace", env=env,
                                        start_new_session=True)
                # Each step has its own build and boot timeouts; this bounds the
                # whole run too (a step that hangs outside them is ended).
                watchdog = threading.Timer(timeout, _stop, [proc]) if timeout else None
                if watchdog:
                    watchdog.daemon = True
                    watchdog.start()
                try:
                    assert proc.stdout
                    for line in proc.stdout:
                        log.write(line)
                        log.flush()
                        print(line, end="", flush=True)
                    rc = proc.wait()
                    print(flush=True)  # git's last line has no newline
                except BaseException:
                    _stop(proc)
                    raise
                finally:
                    if watchdog:
                        watchdog.cancel()
        text = git(repo, "bisect", "log", check=False).stdout
    finally:
        git(repo, "bisect", "reset", check=False)
    first, subject, maybe = parse_log(text)
    return Outcome(rc, text, first, subject, maybe)


# --- the parent: harness bisect ---------------------------------------------


@dataclass
class BisectRequest:
    good: str
    bad: str
    test: str = ""  # PROG or PROG:CASE
    expect_splat: bool = False


def make_judge(req: run.Request, breq: BisectRequest) -> step.Judge:
    if breq.test:
        prog, case = parse_test(breq.test)
        # Only the named program runs; its verdict alone decides (KUnit too is
        # out of it: a KUnit failure elsewhere is not what is bisected).
        return step.Judge([prog], case=case, expect_splat=breq.expect_splat, kunit=False)
    return step.Judge(None, expect_splat=breq.expect_splat)  # the profile's selection


def step_profile(req: run.Request, breq: BisectRequest) -> Profile:
    """The steps' profile: --test PROG:CASE runs only CASE when PROG can run
    single cases (checked now, before the lock: an unknown case lists the known
    ones); an upstream selftest runs whole and the step judges only CASE (an
    unknown one fails the first step, with the names)."""
    if not breq.test:
        return req.profile
    prog, case = parse_test(breq.test)
    guest_tests = project_path(req.profile.guest_tests)
    tests = ([f"{prog}:{case}"] if case and selection.known_cases(guest_tests, prog) is not None
             else [prog])
    selection.check(tests, guest_tests)
    return replace(req.profile, tests=tests)


def _resolve(repo: Path, rev: str, base: str, series_head: str) -> str:
    if rev == "base":
        return base
    if rev == "series":
        return series_head
    sha = rev_parse(repo, rev)
    if not sha:
        raise ConfigError(f"no commit {rev!r} in {repo}")
    return sha


def _step_dirs(steps_dir: Path) -> list[Path]:
    # Not RunRecord's `latest` symlink.
    return [d for d in steps_dir.iterdir() if d.is_dir() and not d.is_symlink()]


def read_steps(steps_dir: Path) -> list[dict]:
    steps = []
    for d in _step_dirs(steps_dir) if steps_dir.is_dir() else []:
        try:
            steps.append(json.loads((d / "results.json").read_text()) | {"dir": str(d)})
        except (OSError, ValueError):
            continue
    return sorted(steps, key=lambda s: s.get("metadata", {}).get("step", 0))


def run_bisect(req: run.Request, breq: BisectRequest, rec: RunRecord) -> int:
    jd = make_judge(req, breq)
    profile = step_profile(req, breq)
    t0 = time.monotonic()
    with req.timings.measure("source", "Preparing the kernel source ..."):
        src = prepare_source(req.profile.source, cache_dir())
    repo = src.repo
    lock = run.tree_lock_path(req)
    patches: dict[str, str] = {}
    with locked(lock, "the kernel tree and build directory"):
        want_series = "series" in (breq.good, breq.bad)
        if want_series and req.kernel == "vanilla":
            raise ConfigError("--good/--bad series needs a series (drop --no-series)")
        series = (read_series(project_path(req.profile.series)) if want_series
                  else Series(None, []))
        with req.timings.measure("series", "Applying the series ..." if want_series
                                 else "Checking out the base ..."):
            head = apply_series(repo, src.base, series)
        commits = git(repo, "rev-list", "--reverse", f"{src.base}..{head}").stdout.split()
        patches = {c: p.name for c, p in zip(commits, series.patches, strict=False)}
        good = _resolve(repo, breq.good, src.base, head)
        bad = _resolve(repo, breq.bad, src.base, head)
        # Absolute: the step runs in the tree (git bisect run's working directory).
        steps_dir = rec.path("steps").resolve()
        steps_dir.mkdir()
        state = rec.path("bisect-step.pickle").resolve()
        sreq = run.Request(profile=profile, jobs=req.jobs, results_root=steps_dir,
                           at_head=STEP_LABEL)
        state.write_bytes(pickle.dumps(StepState(sreq, jd, steps_dir, printer.verbose)))
        rec.meta(good=breq.good, good_commit=good, bad=breq.bad, bad_commit=bad,
                 tree=str(repo), judge=asdict(jd), patches=patches)
        env = dict(os.environ)
        env[LOCK_ENV] = str(lock)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(Path(harness.__file__).resolve().parents[1]),
             *filter(None, [env.get("PYTHONPATH")])])
        cmd = [sys.executable, "-m", "harness", "_bisect-step", str(state)]
        printer.stage(f"Bisecting {good[:12]} ({breq.good}, good) .. {bad[:12]} ({breq.bad}, "
                      f"bad) in {repo}: {describe(jd)}")
        # Every commit between good and bad may be tested (skips), each within
        # its build and boot timeouts.
        count = len(git(repo, "rev-list", f"{good}..{bad}").stdout.split())
        budget = (count + 1) * (req.profile.timeouts.build + req.profile.timeouts.run + 300)
        outcome = drive(repo, good, bad, cmd, env, rec.path("bisect-run.log"), budget)
    rec.path("bisect.log").write_text(outcome.log)
    steps = read_steps(steps_dir)
    code = exit_code(outcome, steps)
    summary = render(outcome, steps, patches, bad, time.monotonic() - t0)
    rec.path("summary.txt").write_text(summary + "\n")
    print(summary, flush=True)
    rec.finish("pass" if code == EXIT_OK else "fail", code, first_bad=outcome.first_bad,
               first_bad_subject=outcome.subject, first_bad_patch=patches.get(outcome.first_bad,
                                                                              ""),
               candidates=outcome.candidates,
               steps=[_step_row(s) for s in steps])
    return code


def describe(jd: step.Judge) -> str:
    if jd.expect_splat:
        return "bad = a kernel splat" + (f" (running {', '.join(jd.tests)})" if jd.tests else "")
    what = (f"{jd.tests[0]}:{jd.case}" if jd.case and jd.tests
            else ", ".join(jd.tests or []) or "a test of the selection")
    return f"bad = {what} fails"


def exit_code(outcome: Outcome, steps: list[dict]) -> int:
    """0 when the first bad commit was found; otherwise why not."""
    if outcome.first_bad:
        return EXIT_OK
    codes = [s.get("exit_code", EXIT_INFRA) for s in steps]
    aborted = [c for c in codes if bisect_exit(c) == ABORT]
    if aborted:
        return aborted[-1]  # a step's internal error (70) is the bisect's
    skipped = [c for c in codes if bisect_exit(c) == SKIP]
    return max(skipped, default=EXIT_INFRA)


def _step_row(s: dict) -> dict:
    meta = s.get("metadata", {})
    return {"step": meta.get("step"), "commit": meta.get("commit", ""),
            "subject": meta.get("subject", ""), "exit_code": s.get("exit_code"),
            "git": _GIT_WORD.get(s.get("git", ABORT), "abort"), "times": s.get("times", {}),
            "message": s.get("message", "")}


def render(outcome: Outcome, steps: list[dict], patches: dict[str, str], bad: str,
           seconds: float) -> str:
    rows = [_step_row(s) for s in steps]
    out = []
    if outcome.first_bad:
        patch = patches.get(outcome.first_bad)
        out.append(f"First bad commit: {outcome.first_bad[:12]} {outcome.subject}"
                   + (f"  [{patch}]" if patch else ""))
        tested = [s for s in steps if s.get("metadata", {}).get("commit") == outcome.first_bad]
        if tested:
            st = tested[-1].get("stages", {}).get("verdict", {})
            out.append("  " + "\n  ".join(st.get("reasons") or [tested[-1].get("message", "")]))
            out.extend(f"    | {line}" for line in (st.get("output") or [])[-40:])
            out.append(f"  results: {tested[-1]['dir']}")
        elif outcome.first_bad == bad:
            out.append("  (the --bad revision itself: every commit before it tested good; "
                       "it was not run during this bisect)")
    elif outcome.candidates:
        out.append("No single first bad commit: only skipped commits are left; it is one of:")
        out.extend(f"  {sha[:12]} {subj}" + (f"  [{patches[sha]}]" if sha in patches else "")
                   for sha, subj in outcome.candidates)
    else:
        last = rows[-1] if rows else None
        out.append("Bisect aborted" + (f" at step {last['step']} ({last['commit'][:12]}): "
                                       f"{last['message'].strip().splitlines()[-1:]}"
                                       if last else f" (git bisect run exit {outcome.returncode})"))
    out.append("")
    out.append("git bisect log:")
    out.extend(f"  {line}" for line in outcome.log.strip().splitlines())
    out.append("")
    out.append(render_steps(rows, seconds))
    return "\n".join(out)


def render_steps(rows: list[dict], seconds: float) -> str:
    keys = ("build", "rootfs", "boot", "tests")
    head = (f"{'step':>4}  {'commit':12}  {'verdict':7}  " + "  ".join(f"{k:>7}" for k in keys)
            + f"  {'total':>7}  subject")
    lines = [head]
    total = dict.fromkeys(keys, 0.0)
    for r in rows:
        t = r["times"]
        for k in keys:
            total[k] += t.get(k, 0.0)
        lines.append(f"{r['step']!s:>4}  {r['commit'][:12]:12}  {r['git']:7}  "
                     + "  ".join(f"{t.get(k, 0.0):6.1f}s" for k in keys)
                     + f"  {sum(t.get(k, 0.0) for k in keys):6.1f}s  {r['subject'][:50]}")
    lines.append(f"{'all':>4}  {len(rows)!s:>2} steps{'':5}  {'':7}  "
                 + "  ".join(f"{total[k]:6.1f}s" for k in keys)
                 + f"  {sum(total.values()):6.1f}s  (bisect wall time {seconds:.1f}s)")
    return "\n".join(lines)
