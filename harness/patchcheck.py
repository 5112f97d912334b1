"""`harness patchcheck`: every prefix of the series builds, is clean, boots, passes.

As ktest.pl's patchcheck does, for each patch in turn: build the tree before
it with the files it touches touched (so the incremental build prints their
baseline warnings; ccache replays them cheaply), apply it, build again, and
fail it on a warning in one of those files that was not there before
(compared without line numbers, which a patch shifts). checkpatch.pl must
report 0 errors and 0 warnings. Then boot (`--depth boot`) and run the guest
tests (`--depth test`): an intermediate prefix may give what either the base
or the series is declared to give, the whole series must give the series'.
All prefixes share one incremental build directory.

`--depth objects` is the quick look: only the .c files each patch touches
are compiled, at W=1 (`make W=1 fs/file_table.o ...`; no image, no link),
before and after it. `--from K` applies patches 1..K-1 unchecked.
`--matrix` (patchcheck_matrix.py) runs all this for several targets.
"""

import os
import re
import subprocess
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from harness import printer, run, step
from harness.errors import (
    EXIT_INFRA,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TEST_FAILURE,
    EXIT_USAGE,
    ConfigError,
    HarnessError,
    InfraError,
)
from harness.gitutil import git, rev_parse
from harness.lock import locked
from harness.profile import cache_dir, project_path
from harness.results import RunRecord
from harness.stages.series import (
    Patch,
    Series,
    _am_failure_details,
    apply_patch,
    apply_series,
    read_series,
)
from harness.stages.source import prepare_source

DEPTHS = ("objects", "build", "boot", "test")
LABEL = "patchcheck"  # images/patchcheck/: never overwrites the series image
_WARNING = re.compile(r"^(\S+?):\d+(?::\d+)?: warning: (.*)$")
_TOTAL = re.compile(r"^total: (\d+) errors?, (\d+) warnings?,(?: (\d+) checks?,)? (\d+) lines? "
                    r"checked", re.M)
_CHECKPATCH_MSG = re.compile(r"^(ERROR|WARNING|CHECK): ")
_DIFF_GIT = re.compile(r"^diff --git a/(\S+) b/(\S+)$", re.M)
_COMPILED = (".c", ".h", ".S")
_ANSI = re.compile(r"\x1b\[[0-9;]*[mK]")


# --- pure helpers (unit-tested) ---------------------------------------------


def touched_files(patch_text: str) -> list[str]:
    """Paths a git patch changes (both sides of renames), in order."""
    seen: dict[str, None] = {}
    for m in _DIFF_GIT.finditer(patch_text):
        seen.setdefault(m.group(1), None)
        seen.setdefault(m.group(2), None)
    return list(seen)


def warning_key(line: str, files: list[str]) -> tuple[str, str] | None:
    """(touched file, message) of a compiler warning in one of FILES, without line numbers.

    The compiler names sources as the build saw them (absolute, or relative
    to the build directory after ccache's CCACHE_BASEDIR), so match by suffix.
    """
    m = _WARNING.match(_ANSI.sub("", line).strip())
    if not m:
        return None
    path = m.group(1)
    for f in files:
        if path == f or path.endswith(f"/{f}"):
            return f, m.group(2).strip()
    return None


def new_warnings(before: list[str], after: list[str], files: list[str]) -> list[str]:
    """Warnings in FILES that AFTER has more of than BEFORE (a multiset difference)."""

    def keys(lines: list[str]) -> Counter[tuple[str, str]]:
        return Counter(k for k in (warning_key(line, files) for line in lines) if k)

    extra = keys(after) - keys(before)
    return [f"{f}: warning: {msg}" for (f, msg), n in sorted(extra.items()) for _ in range(n)]


@dataclass
class Checkpatch:
    errors: int
    warnings: int
    checks: int
    messages: list[str] = field(default_factory=list)  # the ERROR:/WARNING: lines

    @property
    def ok(self) -> bool:
        return self.errors == 0 and self.warnings == 0


def parse_checkpatch(output: str) -> Checkpatch | None:
    """checkpatch.pl's verdict from its `total: ...` line; None when it has none."""
    m = _TOTAL.search(output)
    if not m:
        return None
    msgs = [ln.strip() for ln in output.splitlines() if _CHECKPATCH_MSG.match(ln)]
    return Checkpatch(int(m.group(1)), int(m.group(2)), int(m.group(3) or 0), msgs)


@dataclass
class Row:
    number: int
    patch: str
    subject: str = ""
    applied: bool = False
    build: str = "-"  # pass | FAIL | - (not run)
    new_warnings: list[str] = field(default_factory=list)
    warnings_checked: bool = False
    checkpatch: Checkpatch | None = None
    checkpatch_error: str = ""  # checkpatch.pl did not run or printed no verdict
    boot: str = "-"
    tests: str = "-"
    reasons: list[str] = field(default_factory=list)
    code: int = EXIT_OK
    times: dict[str, float] = field(default_factory=dict)
    results: str = ""

    def fail(self, code: int, reason: str) -> None:
        self.code = max(self.code, code)
        self.reasons.append(reason)


def _cell_warnings(r: Row) -> str:
    if not r.warnings_checked:
        return "-"
    return f"{len(r.new_warnings)} new" if r.new_warnings else "ok"


def _cell_checkpatch(r: Row) -> str:
    if r.checkpatch is None:
        return "FAIL" if r.checkpatch_error else "-"
    c = r.checkpatch
    return "ok" if c.ok else f"{c.errors}E {c.warnings}W"


def render_table(rows: list[Row], depth: str) -> str:
    """One line per patch: build / warnings / checkpatch / boot / tests, then why rows fail."""
    cols = ["build", "warnings", "checkpatch"] + (["boot"] if depth != "build" else []) + (
        ["tests"] if depth == "test" else [])
    width = max([len(r.patch) for r in rows] + [5])
    lines = [f"{'#':>2}  {'patch':{width}}  " + "  ".join(f"{c:10}" for c in cols) + "  time"]
    for r in rows:
        cells = {"build": r.build if r.applied else "NO APPLY", "warnings": _cell_warnings(r),
                 "checkpatch": _cell_checkpatch(r), "boot": r.boot, "tests": r.tests}
        total = sum(r.times.values())
        lines.append(f"{r.number:>2}  {r.patch:{width}}  "
                     + "  ".join(f"{cells[c]:10}" for c in cols)
                     + (f"  {total:.0f}s" if total else ""))
    failing = [r for r in rows if r.code != EXIT_OK]
    for r in failing:
        lines.append(f"{r.patch}:")
        lines.extend(f"    {reason}" for reason in r.reasons)
    ok = sum(1 for r in rows if r.code == EXIT_OK and r.applied)
    lines.append(f"patchcheck ({depth}): {ok} of {len(rows)} patches pass"
                 + (f"; failing: {', '.join(r.patch for r in failing)}" if failing else ""))
    return "\n".join(lines)


def exit_code(rows: list[Row]) -> int:
    return max((r.code for r in rows), default=EXIT_OK)


# --- running it ----------------------------------------------------------------


def run_checkpatch(tree: Path, patch: Path, log_path: Path) -> Checkpatch:
    script = tree / "scripts" / "checkpatch.pl"
    if not script.is_file():
        raise InfraError(f"{script} not found")
    try:
        proc = subprocess.run(["perl", str(script), "--color=never", str(patch.resolve())],
                              cwd=tree, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise InfraError(f"checkpatch.pl failed to run: {e}") from None
    out = proc.stdout + proc.stderr
    log_path.write_text(out)
    res = parse_checkpatch(out)
    if res is None:
        raise InfraError(f"checkpatch.pl printed no verdict (exit {proc.returncode}): "
                         + " / ".join(out.strip().splitlines()[-3:]))
    return res


def objects_of(files: list[str], srcarch: str) -> tuple[str, ...]:
    """The objects `--depth objects` compiles: touched .c files, except those
    of another architecture's arch/ directory."""
    return tuple(f[:-2] + ".o" for f in files if f.endswith(".c")
                 and (not f.startswith("arch/") or f.startswith(f"arch/{srcarch}/")))


def _touch(tree: Path, files: list[str]) -> None:
    now = time.time()
    for f in files:
        p = tree / f
        if f.endswith(_COMPILED) and p.is_file():
            os.utime(p, (now, now))


def _judge_for(depth: str, last: bool) -> step.Judge:
    if depth == "boot":
        return step.Judge([], kunit=False)
    # The whole series must do what the series is declared to do; a prefix
    # may still do what the base does.
    return step.Judge(None, kernels=("series",) if last else ("vanilla", "series"))


def check_patch(req: run.Request, repo: Path, patch: Patch, row: Row, depth: str, last: bool,
                rec: RunRecord, checkpatch: bool = True) -> bool:
    """Fill ROW for PATCH on top of the current HEAD; False when it does not apply."""
    text = patch.path.read_text(errors="replace")
    files = touched_files(text)
    rec.meta(patch=str(patch.path), patch_name=patch.name, touched=files)
    t0 = time.monotonic()
    try:
        if checkpatch:
            row.checkpatch = run_checkpatch(repo, patch.path, rec.path("checkpatch.log"))
        if row.checkpatch and not row.checkpatch.ok:
            row.fail(EXIT_TEST_FAILURE, f"checkpatch: {row.checkpatch.errors} errors, "
                     f"{row.checkpatch.warnings} warnings")
            row.reasons.extend(f"  {m}" for m in row.checkpatch.messages[:10])
    except InfraError as e:
        row.checkpatch_error = str(e)
        row.fail(EXIT_INFRA, f"checkpatch: {e}")
    row.times["checkpatch"] = time.monotonic() - t0
    if depth == "objects":
        req = replace(req, goals=objects_of(files, req.target.arch.srcarch),
                      make_extra=("W=1",))
        if not req.goals:
            printer.info(f"[{row.number}] no .c file of this target touched: "
                         "objects depth compiles nothing")

    # Baseline: the touched files recompiled before the patch.
    base = step.StepTimes()
    _touch(repo, files)
    before, baseline_ok = [], False
    if depth != "objects" or req.goals:
        printer.stage(f"[{row.number}] baseline build (touched: {', '.join(files)})")
        try:
            before = step.build(req, rec, base).warnings
            baseline_ok = True
        except HarnessError as e:
            printer.warn(f"baseline build before {patch.name} failed: "
                         f"{str(e).splitlines()[0]}")
    row.times["baseline"] = base.build

    am = apply_patch(repo, patch)
    if am.returncode != 0:
        git(repo, "am", "--abort", check=False)
        row.fail(EXIT_USAGE, f"does not apply: {_am_failure_details(am.stdout + am.stderr)}")
        return False
    row.applied = True
    row.subject = git(repo, "log", "-1", "--format=%s").stdout.strip()

    times = step.StepTimes()
    if depth == "objects" and not req.goals:
        row.build = "pass"
        return True
    printer.stage(f"[{row.number}] building with {patch.name}")
    try:
        img = step.build(req, rec, times)
    except HarnessError as e:
        if e.exit_code == EXIT_INTERRUPTED:
            raise
        row.build = "FAIL"
        row.fail(e.exit_code, str(e))
        return True
    finally:
        row.times["build"] = times.build
    row.build = "pass"
    row.warnings_checked = True
    row.new_warnings = new_warnings(before, img.warnings, files)
    if row.new_warnings:
        row.fail(EXIT_TEST_FAILURE, f"{len(row.new_warnings)} new compiler warnings"
                 + ("" if baseline_ok else " (no baseline: the build before it failed)"))
        row.reasons.extend(f"  {w}" for w in row.new_warnings[:10])
    if depth in ("objects", "build"):
        return True

    jd = _judge_for(depth, last)
    try:
        verdict = step.boot_and_judge(req, img, rec, jd, times)
    except HarnessError as e:
        if e.exit_code in (EXIT_INTERRUPTED, EXIT_USAGE):
            raise
        row.boot = "FAIL"
        row.fail(e.exit_code, str(e))
        return True
    finally:
        row.times.update(rootfs=times.rootfs, boot=times.boot, tests=times.tests)
    started = rec.data["stages"].get("boot", {}).get("guest_start") is not None
    if depth == "boot":
        row.boot = "pass" if verdict.code == EXIT_OK else "FAIL"
    else:
        row.boot = "pass" if started else "FAIL"
        row.tests = "pass" if verdict.code == EXIT_OK else ("FAIL" if started else "-")
    if verdict.code != EXIT_OK:
        row.fail(verdict.code, "; ".join(verdict.reasons))
    return True


def run_patchcheck(req: run.Request, depth: str, rec: RunRecord, start: int = 1) -> int:
    rows = check_series(req, depth, rec, start)
    table = render_table(rows, depth)
    rec.path("summary.txt").write_text(table + "\n")
    print(table, flush=True)
    code = exit_code(rows)
    rec.finish("pass" if code == EXIT_OK else "fail", code)
    return code


def check_series(req: run.Request, depth: str, rec: RunRecord, start: int = 1,
                 checkpatch: bool = True, label: str = LABEL) -> list[Row]:
    """Patches START.. of the series, each on top of the ones before it, into REC."""
    if depth not in DEPTHS:
        raise ConfigError(f"--depth {depth}: expected one of {', '.join(DEPTHS)}")
    if req.kernel == "vanilla":
        raise ConfigError("patchcheck checks a series: drop --no-series")
    series = read_series(project_path(req.profile.series))
    if not series.patches:
        raise ConfigError(f"{series.path}: no patches")
    if not 1 <= start <= len(series.patches):
        raise ConfigError(f"--from {start}: the series has patches 1..{len(series.patches)}")
    with req.timings.measure("source", "Preparing the kernel source ..."):
        src = prepare_source(req.profile.source, cache_dir())
    repo = src.repo
    sreq = run.Request(profile=req.profile, profile_name=req.profile_name, jobs=req.jobs,
                       results_root=req.results_root, timings=req.timings, at_head=label,
                       tree_locked=True)
    rows = [Row(i, p.name) for i, p in enumerate(series.patches, 1)][start - 1:]
    rec.meta(kernel=label, depth=depth, series_file=str(series.path), base=src.base,
             patches=[p.name for p in series.patches], tree=str(repo), first_checked=start,
             target=sreq.target.name)
    rows_dir = rec.path("patches")
    rows_dir.mkdir()
    with locked(run.tree_lock_path(sreq), "the kernel tree and build directory"):
        # The base (recorded as such), plus the patches before START, unchecked.
        apply_series(repo, src.base, Series(series.path, series.patches[:start - 1]))
        for row, patch in zip(rows, series.patches[start - 1:], strict=True):
            printer.stage(f"=== patch {row.number}/{len(series.patches)}: {patch.name} ===")
            prec = RunRecord(rows_dir, f"{row.number:02d}-{patch.path.stem}")
            row.results = str(prec.dir)
            try:
                applied = check_patch(sreq, repo, patch, row, depth,
                                      row.number == len(series.patches), prec, checkpatch)
            finally:
                prec.finish("pass" if row.code == EXIT_OK else "fail", row.code,
                            "; ".join(row.reasons), row=asdict(row))
                rec.data["rows"] = [asdict(r) for r in rows]
                rec.save()
            printer.stage(f"[{row.number}] {patch.name}: "
                          + ("pass" if row.code == EXIT_OK else "; ".join(row.reasons[:1])))
            if not applied:
                break  # the later patches build on this one
        head = rev_parse(repo, "HEAD")
    rec.meta(head=head)
    return rows
