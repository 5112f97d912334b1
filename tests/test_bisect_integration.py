"""harness bisect and harness patchcheck on real builds and boots.

The series is the real one (patches/series) with deliberately wrong patches
inserted: one that charges every opened file twice (file_charge's
charge.follows_open_files catches it), one that does not compile, one that
adds a compiler warning, one that checkpatch.pl rejects. They touch lines the
series does not (vfs_open() and vfs_truncate() in fs/open.c, fs/nsfs.c), so
they apply anywhere in it. Every
bisect step is an incremental build of the shared build directory plus one
short boot running file_charge alone.
"""

import difflib
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT, harness, requires_kernel_tools

from harness.stages.series import read_series

# Every step builds another prefix of the series, a near-full rebuild each
# from a cold cache: these run nightly, not in every CI run (pyproject.toml).
pytestmark = [pytest.mark.integration, pytest.mark.nightly, requires_kernel_tools()]
CASE = "file_charge:charge.follows_open_files"


@pytest.fixture(scope="module")
def results_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("results")


def _source_repo() -> Path:
    from harness.profile import cache_dir
    return next((cache_dir() / "src").glob("debian-*[!k]"))


def _base_file(path: str) -> str:
    return subprocess.run(["git", "-C", str(_source_repo()), "show", f"base:{path}"],
                          capture_output=True, text=True, check=True).stdout


def _patch(subject: str, body: str, path: str, old: str, new: str,
           base: str | None = None) -> str:
    """A format-patch style patch replacing OLD with NEW once in PATH (as of BASE text)."""
    a = _base_file(path) if base is None else base
    assert a.count(old) == 1, f"{old!r} not unique in {path}"
    b = a.replace(old, new)
    diff = "".join(difflib.unified_diff(a.splitlines(True), b.splitlines(True),
                                        f"a/{path}", f"b/{path}"))
    return (f"From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\n"
            f"From: Harness Test <test@example.com>\nDate: Thu, 1 Jan 2026 00:00:00 +0000\n"
            f"Subject: [PATCH] {subject}\n\n{body}\n\n"
            f"Signed-off-by: Harness Test <test@example.com>\n---\n"
            f"diff --git a/{path} b/{path}\n{diff}--\n2.39.5\n")


VFS_OPEN = "\tfile->f_path = *path;\n\tret = do_dentry_open(file, NULL);\n"


def double_charge() -> tuple[str, str]:
    return "0100-fs-charge-opened-files-twice.patch", _patch(
        "fs: account a shadow copy of every opened file",
        "Deliberately wrong, for the bisect test: every open() charges a second\n"
        "object of the size of struct file that is never freed, so a file costs\n"
        "its memcg twice and closing it gives nothing back.",
        "fs/open.c", VFS_OPEN,
        "\tfile->f_path = *path;\n\t(void)kmalloc(sizeof(*file), GFP_KERNEL_ACCOUNT);\n"
        "\tret = do_dentry_open(file, NULL);\n")


NSFS_HEAD = "// SPDX-License-Identifier: GPL-2.0\n#include <linux/mount.h>\n"
BROKEN_LINE = "int harness_broken(void) { return undeclared_identifier; }\n"


def broken_build() -> list[tuple[str, str]]:
    """A patch that does not compile and the next one, which fixes it."""
    broken = NSFS_HEAD + BROKEN_LINE
    return [("0101-fs-break-the-build.patch",
             _patch("fs: nsfs: break the build", "Deliberately does not compile.",
                    "fs/nsfs.c", NSFS_HEAD, broken)),
            ("0102-fs-fix-the-build.patch",
             _patch("fs: nsfs: fix the build", "Takes the broken line out again.",
                    "fs/nsfs.c", broken, NSFS_HEAD,
                    base=_base_file("fs/nsfs.c").replace(NSFS_HEAD, broken)))]


def new_warning() -> tuple[str, str]:
    return "0103-fs-add-an-unused-variable.patch", _patch(
        "fs: add an unused variable", "Deliberately adds a compiler warning.",
        "fs/open.c", "{\n\tstruct mnt_idmap *idmap;\n\tstruct inode *inode;\n",
        "{\n\tstruct mnt_idmap *idmap;\n\tstruct inode *inode;\n\tint harness_unused;\n")


def checkpatch_error() -> tuple[str, str]:
    return "0104-fs-trailing-whitespace.patch", _patch(
        "fs: nsfs: a comment with trailing whitespace",
        "Compiles cleanly; checkpatch.pl reports an error.",
        "fs/nsfs.c", NSFS_HEAD, NSFS_HEAD + "/* trailing whitespace */ \n")


def _series_with(tmp_path: Path, inserts: dict[int, list[tuple[str, str]]]) -> Path:
    """A copy of patches/series with INSERTS[i] placed after its i-th patch."""
    real = read_series(ROOT / "patches" / "series").patches
    assert real, "patches/series is empty"
    names = []
    for i in range(len(real) + 1):
        if i:
            (tmp_path / real[i - 1].name).write_bytes(real[i - 1].path.read_bytes())
            names.append(real[i - 1].name)
        for name, text in inserts.get(i, []):
            (tmp_path / name).write_text(text)
            names.append(name)
    (tmp_path / "series").write_text("\n".join(names) + "\n")
    return tmp_path / "series"


def _first_tested(n: int, tmp_path: Path) -> int:
    """Which of N linear commits (1-based) `git bisect` tests first, good = their parent."""
    repo = tmp_path / "probe"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    for i in range(n + 1):
        subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t",
                        "commit", "-q", "--allow-empty", "-m", str(i)], check=True)
    out = subprocess.run(["git", "-C", str(repo), "rev-list", "--bisect", "HEAD", "^HEAD~" +
                          str(n)], capture_output=True, text=True, check=True).stdout.strip()
    msg = subprocess.run(["git", "-C", str(repo), "log", "-1", "--format=%s", out],
                         capture_output=True, text=True, check=True).stdout.strip()
    return int(msg)


def _tree_is_clean_after(run) -> None:
    repo = _source_repo()
    assert not (repo / ".git" / "BISECT_START").exists(), "git bisect reset did not run"
    assert f"Results: {run.results}" in run.output


def test_bisect_names_the_wrong_patch_in_the_middle(tmp_path, results_root):
    n = len(read_series(ROOT / "patches" / "series").patches)
    series = _series_with(tmp_path, {n // 2: [double_charge()]})
    run = harness("bisect", "--series", str(series), "--good", "base", "--bad", "series",
                  "--test", CASE, results_root=results_root)
    assert run.returncode == 0, run.output
    data = run.data
    assert data["first_bad_patch"] == double_charge()[0], run.output
    assert data["first_bad_subject"] == "fs: account a shadow copy of every opened file"
    summary = (run.results / "summary.txt").read_text()
    assert summary.startswith("First bad commit: ")
    assert "charge.follows_open_files: FAIL" in summary  # the failing test and its output
    assert "# first bad commit: [" in (run.results / "bisect.log").read_text()
    steps = data["steps"]
    assert steps and all(s["git"] in ("good", "bad") for s in steps), steps
    for s in steps:  # every step is measured: build, rootfs, boot, tests
        assert set(s["times"]) == {"build", "rootfs", "boot", "tests"}
        assert s["times"]["boot"] > 0 and s["times"]["tests"] > 0
    _tree_is_clean_after(run)


def test_bisect_skips_a_commit_that_does_not_compile(tmp_path, results_root):
    n = len(read_series(ROOT / "patches" / "series").patches)
    # Put the broken commit exactly where git looks first, right after the
    # culprit (a skip just before it would leave git unable to tell them apart).
    first = _first_tested(n + 3, tmp_path)
    assert 2 <= first <= n + 1
    series = _series_with(tmp_path, {first - 2: [double_charge(), *broken_build()]})
    run = harness("bisect", "--series", str(series), "--good", "base", "--bad", "series",
                  "--test", CASE, results_root=results_root)
    assert run.returncode == 0, run.output
    data = run.data
    assert data["first_bad_patch"] == double_charge()[0], run.output
    skipped = [s for s in data["steps"] if s["git"] == "skip"]
    assert skipped and skipped[0]["subject"] == "fs: nsfs: break the build", data["steps"]
    assert skipped[0]["exit_code"] == 3
    assert "git bisect skip" in (run.results / "bisect.log").read_text()
    _tree_is_clean_after(run)


def test_patchcheck_real_series_green_and_bad_patches_flagged(tmp_path, results_root):
    n = len(read_series(ROOT / "patches" / "series").patches)
    series = _series_with(tmp_path, {n: [new_warning(), checkpatch_error()]})
    run = harness("patchcheck", "--depth", "boot", "--series", str(series),
                  results_root=results_root)
    assert run.returncode == 1, run.output
    rows = {r["patch"]: r for r in run.data["rows"]}
    real = read_series(ROOT / "patches" / "series").patches
    for p in real:
        r = rows[p.name]
        assert r["code"] == 0 and r["build"] == "pass" and r["boot"] == "pass", r
        assert r["checkpatch"]["errors"] == 0 and r["checkpatch"]["warnings"] == 0, r
        assert r["new_warnings"] == [], r
    warn = rows[new_warning()[0]]
    assert warn["code"] == 1 and warn["build"] == "pass"
    # (gcc quotes the name with ' or with ‘’ depending on the locale)
    [w] = warn["new_warnings"]
    assert w.startswith("fs/open.c: warning: unused variable ") and "harness_unused" in w, w
    assert w.endswith("[-Wunused-variable]"), w
    style = rows[checkpatch_error()[0]]
    assert style["code"] == 1 and style["new_warnings"] == []
    assert style["checkpatch"]["errors"] >= 1
    assert any("trailing whitespace" in m for m in style["checkpatch"]["messages"])
    summary = (run.results / "summary.txt").read_text()
    assert f"patchcheck (boot): {n} of {n + 2} patches pass" in summary
    for name in (new_warning()[0], checkpatch_error()[0]):
        assert (Path(rows[name]["results"]) / "checkpatch.log").is_file()
