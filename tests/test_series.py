"""series.py against a real (tiny) git repository."""

import os
import subprocess
from pathlib import Path

import pytest

from harness.errors import ConfigError, SeriesError
from harness.gitutil import git, rev_parse
from harness.series import apply_series, read_series


@pytest.fixture
def repo(tmp_path) -> Path:
    r = tmp_path / "repo"
    r.mkdir()
    git(r, "init", "-q", "-b", "main")
    (r / "a.c").write_text("one\ntwo\nthree\n")
    git(r, "add", "a.c")
    git(r, "commit", "-q", "-m", "base")
    git(r, "tag", "base")
    return r


def _make_patch(repo: Path, out: Path, new_text: str, subject: str) -> Path:
    (repo / "a.c").write_text(new_text)
    git(repo, "commit", "-q", "-am", subject)
    name = subprocess.run(["git", "-C", str(repo), "format-patch", "-1", "-o", str(out)],
                          capture_output=True, text=True, check=True).stdout.strip()
    git(repo, "reset", "-q", "--hard", "base")
    return Path(name)


def test_read_series_skips_comments_and_checks_files(tmp_path):
    (tmp_path / "0001-x.patch").write_text("x")
    (tmp_path / "series").write_text("# comment\n\n0001-x.patch  # trailing\n")
    assert [p.name for p in read_series(tmp_path / "series").patches] == ["0001-x.patch"]
    (tmp_path / "series").write_text("0002-missing.patch\n")
    with pytest.raises(ConfigError, match="series:1: patch 0002-missing.patch not found"):
        read_series(tmp_path / "series")


def test_apply_series_is_deterministic_and_reusable(repo, tmp_path):
    p = _make_patch(repo, tmp_path / "p", "one\n2\nthree\n", "change two")
    (tmp_path / "p" / "series").write_text(p.name + "\n")
    series = read_series(tmp_path / "p" / "series")
    base = rev_parse(repo, "base")
    head1 = apply_series(repo, base, series)
    assert (repo / "a.c").read_text() == "one\n2\nthree\n"
    mtime = (repo / "a.c").stat().st_mtime_ns
    # Unchanged series: nothing is touched, so make has nothing to rebuild.
    assert apply_series(repo, base, series) == head1
    assert (repo / "a.c").stat().st_mtime_ns == mtime
    # Base alone, then the series again: the same commit id.
    apply_series(repo, base, read_series(None))
    assert (repo / "a.c").read_text() == "one\ntwo\nthree\n"
    assert apply_series(repo, base, series) == head1


def test_patch_that_does_not_apply_names_patch_and_file_and_leaves_base(repo, tmp_path):
    p = _make_patch(repo, tmp_path / "p", "one\n2\nthree\n", "change two")
    p.write_text(p.read_text().replace("-two", "-zwei").replace(" one", " eins"))
    (tmp_path / "p" / "series").write_text(p.name + "\n")
    base = rev_parse(repo, "base")
    with pytest.raises(SeriesError) as e:
        apply_series(repo, base, read_series(tmp_path / "p" / "series"))
    assert p.name in str(e.value) and "a.c" in str(e.value)
    assert rev_parse(repo, "HEAD") == base
    assert not git(repo, "status", "--porcelain").stdout.strip()
    assert not (repo / ".git" / "rebase-apply").exists()


def test_a_patch_added_to_the_series_leaves_the_other_files_untouched(repo, tmp_path):
    """Re-application starts from the base, but a file whose content comes back
    the same keeps its mtime, so make rebuilds only what the new patch changes."""
    (repo / "b.h").write_text("header\n")
    git(repo, "add", "b.h")
    git(repo, "commit", "-q", "-m", "header")
    git(repo, "tag", "-f", "base")
    (repo / "b.h").write_text("header, patched\n")
    git(repo, "commit", "-q", "-am", "patch the header")
    out = tmp_path / "p"
    first = Path(subprocess.run(["git", "-C", str(repo), "format-patch", "-1", "-o", str(out)],
                                capture_output=True, text=True, check=True).stdout.strip())
    git(repo, "reset", "-q", "--hard", "base")
    second = _make_patch(repo, out, "one\n2\nthree\n", "change two")
    second = second.rename(out / "0002-change-two.patch")
    base = rev_parse(repo, "base")
    (out / "series").write_text(f"{first.name}\n")
    apply_series(repo, base, read_series(out / "series"))
    old = 1_000_000_000_000_000_000
    for name in ("a.c", "b.h"):
        os.utime(repo / name, ns=(old, old))
    (out / "series").write_text(f"{first.name}\n{second.name}\n")
    apply_series(repo, base, read_series(out / "series"))
    assert (repo / "b.h").read_text() == "header, patched\n"
    assert (repo / "b.h").stat().st_mtime_ns == old
    assert (repo / "a.c").read_text() == "one\n2\nthree\n"
    assert (repo / "a.c").stat().st_mtime_ns != old
