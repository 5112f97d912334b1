"""series.py against a real (tiny) git repository."""

import os
import re
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT

from harness.errors import ConfigError, SeriesError
from harness.gitutil import git, rev_parse
from harness.stages.series import apply_series, is_mbox, read_series

LINUX_SOURCE = Path("/usr/src/linux-source-6.12.tar.xz")


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    # An mbox is split into the cache: this test's own.
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


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


# --- an mbox as posted ------------------------------------------------------------------

def _commit(repo: Path, text: str, subject: str, body: str = "") -> None:
    (repo / "a.c").write_text(text)
    git(repo, "commit", "-q", "-am", subject + (f"\n\n{body}" if body else ""))


def _format_patch(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "format-patch", *args], capture_output=True,
                          text=True, check=True).stdout


@pytest.fixture
def posted(repo, tmp_path) -> tuple[Path, Path]:
    """Three patches on REPO's base: as `git format-patch --stdout --cover-letter -v3`
    (an mbox, as b4 am writes one) and as patch files with a series file."""
    _commit(repo, "one\n2\nthree\n", "a: change two", "Why two.")
    _commit(repo, "1\n2\nthree\n", "a: change one, a subject long enough to be folded in "
            "the mail header by git format-patch")
    _commit(repo, "1\n2\n3\n", "a: change three")
    mbox = tmp_path / "v3.mbx"
    # (Another git's signature, as from another sender.)
    mbox.write_text(_format_patch(repo, "--stdout", "--cover-letter", "-v3",
                                  "--signature=2.99.0", "base..HEAD"))
    files = tmp_path / "files"
    names = _format_patch(repo, "-o", str(files), "base..HEAD").split()
    (files / "series").write_text("".join(Path(n).name + "\n" for n in names))
    git(repo, "reset", "-q", "--hard", "base")
    return mbox, files / "series"


def test_an_mbox_is_told_from_a_series_file_by_its_content(posted, tmp_path):
    mbox, series_file = posted
    assert is_mbox(mbox) and not is_mbox(series_file)
    assert is_mbox(series_file.parent / series_file.read_text().split()[0])  # one mail
    (tmp_path / "b4.mbx").write_text("From mboxrd@z Thu Jan  1 00:00:00 1970\n")
    assert is_mbox(tmp_path / "b4.mbx")


def test_an_mbox_is_applied_with_its_patches_named_by_their_subjects(repo, posted):
    mbox, series_file = posted
    series = read_series(mbox)
    # The cover letter ([PATCH v3 0/3]) is left out; [PATCH v3 n/3] is not in the names.
    assert [p.name for p in series.patches] == [
        "a: change two",
        "a: change one, a subject long enough to be folded in the mail header by git "
        "format-patch",
        "a: change three"]
    base = rev_parse(repo, "base")
    head = apply_series(repo, base, series)
    assert (repo / "a.c").read_text() == "1\n2\n3\n"
    log = git(repo, "log", "--reverse", "--format=%s%n%b", "base..HEAD").stdout
    assert "a: change two\nWhy two." in log
    # The same patches as files of a series: the same commits, the same digest (so a
    # kernel image built from either is reused for the other).
    files = read_series(series_file)
    assert [p.name for p in files.patches][0] == "0001-a-change-two.patch"
    assert files.digest() == series.digest()
    apply_series(repo, base, read_series(None))
    assert apply_series(repo, base, files) == head
    # A changed message is another series.
    changed = mbox.read_text().replace("Why two.", "Why 2.")
    (mbox.parent / "changed.mbx").write_text(changed)
    assert read_series(mbox.parent / "changed.mbx").digest() != series.digest()


def test_a_patch_of_an_mbox_that_does_not_apply_is_named_by_its_subject(repo, posted):
    mbox, _ = posted
    broken = mbox.read_text().replace("-three\n+3\n", "-drei\n+3\n")
    assert broken != mbox.read_text()
    mbox.write_text(broken)
    base = rev_parse(repo, "base")
    with pytest.raises(SeriesError) as e:
        apply_series(repo, base, read_series(mbox))
    assert "patch a: change three does not apply" in str(e.value) and "a.c" in str(e.value)
    assert rev_parse(repo, "HEAD") == base


def test_a_message_without_a_patch_is_an_error_naming_it(posted, tmp_path):
    mbox, _ = posted
    reply = ("From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\n"
             "From: A Reviewer <r@example.org>\nSubject: Re: [PATCH v3 2/3] a: change one\n"
             "\nLooks good.\n\n")
    (tmp_path / "thread.mbx").write_text(mbox.read_text() + reply)
    with pytest.raises(ConfigError, match=r"thread.mbx: message 5 \(Re: \[PATCH v3 2/3\] a: "
                       r"change one\) holds no patch"):
        read_series(tmp_path / "thread.mbx")
    (tmp_path / "empty.mbx").write_text(reply.split("\n", 1)[0] + "\n")
    with pytest.raises(ConfigError, match="empty.mbx: "):
        read_series(tmp_path / "empty.mbx")


def test_our_series_concatenated_is_an_mbox_of_the_same_patches():
    # `git format-patch --stdout` writes exactly the concatenation of the files.
    series = read_series(ROOT / "patches" / "series")
    data = b"".join(p.path.read_bytes() for p in series.patches)
    mbox = Path(os.environ["HARNESS_CACHE"]) / "ours.mbx"
    mbox.parent.mkdir(parents=True, exist_ok=True)
    mbox.write_bytes(data)
    posted = read_series(mbox)
    assert posted.digest() == series.digest()
    subjects = [_subject(p.path.read_text()) for p in series.patches]
    assert [p.name for p in posted.patches] == subjects


def _subject(mail: str) -> str:
    header = mail.split("\n\n", 1)[0].replace("\n ", " ")
    subject = re.search(r"^Subject: (.*)$", header, re.M).group(1)
    return re.sub(r"^\[PATCH[^]]*\] ", "", subject)


def _small_base(tree: Path, files: list[str]) -> None:
    """A git tree holding just FILES of the Debian base (linux-source-6.12)."""
    tree.mkdir()
    subprocess.run(["tar", "-xJf", str(LINUX_SOURCE), "-C", str(tree), "--strip-components=1",
                    *[f"linux-source-6.12/{f}" for f in files]], check=True, timeout=300)
    git(tree, "init", "-q", "-b", "main")
    git(tree, "add", "-A")
    git(tree, "commit", "-q", "-m", "base: the files the series touches")
    git(tree, "tag", "base")


@pytest.mark.skipif(not LINUX_SOURCE.exists() and not os.environ.get("CI"),
                    reason="no linux-source-6.12: run ./install-deps.sh")
def test_our_series_posted_as_an_mbox_applies_like_the_series_file(tmp_path):
    """Our own series applied on the base's files it touches, posted as b4 am gives it
    (`git format-patch --stdout --cover-letter -v3`), read back and applied again."""
    series = read_series(ROOT / "patches" / "series")
    text = "".join(p.path.read_text() for p in series.patches)
    touched = sorted(set(re.findall(r"^diff --git a/(\S+) ", text, re.M)))
    created = set(re.findall(r"^diff --git a/(\S+) \S+\nnew file mode", text, re.M))
    first = tmp_path / "first"
    _small_base(first, [f for f in touched if f not in created])
    base = rev_parse(first, "base")
    head = apply_series(first, base, series)
    mbox = tmp_path / "v3.mbx"
    mbox.write_text(_format_patch(first, "--stdout", "--cover-letter", "-v3", "base..HEAD"))

    second = tmp_path / "second"
    git(tmp_path, "clone", "-q", "--no-checkout", str(first), str(second))
    posted = read_series(mbox)
    assert [p.name for p in posted.patches] == [_subject(p.path.read_text())
                                                for p in series.patches]
    head2 = apply_series(second, base, posted)
    def tree(repo: Path, rev: str) -> str:
        return git(repo, "rev-parse", f"{rev}^{{tree}}").stdout.strip()
    assert tree(second, head2) == tree(first, head)
    assert git(second, "log", "--format=%s%n%b", "base..HEAD").stdout == \
        git(first, "log", "--format=%s%n%b", "base..HEAD").stdout
