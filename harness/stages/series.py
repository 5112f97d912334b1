"""Stage 2, series: apply a series to the base with `git am -3`.

The series is a quilt-style series file (patches/series: one patch file per
line) or an mbox as posted (`b4 am`'s .mbx, `git format-patch --stdout`),
told apart by content: an mbox starts with a `From <sender> <date>` line.
An mbox is split with `git mailsplit` into one file per patch (kept in the
cache, by the mbox's content) and each patch is named by its subject; a
cover letter (`[PATCH 0/N]`, no diff) is left out. Either way every patch
goes through the same `git am`.

A patch that does not apply is named together with the files and hunks git
complained about, and the tree is put back on the base: no half-applied
state is left behind.
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from pathlib import Path

from harness.errors import ConfigError, SeriesError
from harness.gitutil import IDENTITY, git, rev_parse
from harness.profile import cache_dir

# An mbox's separator line: `From <sender> <asctime date>`, e.g. git's
# `From 1a2b... Mon Sep 17 00:00:00 2001`, b4's `From mboxrd@z Thu Jan  1 ...`.
MBOX_FROM = re.compile(rb"From (\S+) +\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4}$")
COVER_LETTER = re.compile(r"\[[^]]*\b0+/\d+\s*\]")


@dataclass(frozen=True)
class Patch:
    name: str  # in the tables: the file name, or an mbox message's subject
    path: Path  # this one patch as a mail: what `git am` and checkpatch.pl read


@dataclass
class Series:
    path: Path | None  # the series file or mbox; None for the base alone
    patches: list[Patch]
    _digest: str = field(default="", init=False, repr=False, compare=False)

    @property
    def label(self) -> str:
        return "series" if self.path else "vanilla"

    def digest(self) -> str:
        """What `git am` makes of the patches: author, date, subject, message, diff.

        Not the files' names or bytes: the same patches give the same digest
        (and so reuse the same kernel image) whether they come as files of a
        series or as an mbox, renamed, re-numbered (`[PATCH v3 2/5]`) or
        written by another git version (the signature).
        """
        if not self._digest:
            h = hashlib.sha256()
            for p in self.patches:
                h.update(_mail_digest(p.path).encode() + b"\0")
            self._digest = h.hexdigest()
        return self._digest


def _mailinfo(path: Path) -> tuple[str, str, str]:
    """`git mailinfo` of one patch mail, as `git am` reads it: (header, message, diff)."""
    with tempfile.TemporaryDirectory() as tmp, open(path, "rb") as mail:
        msg, diff = Path(tmp, "msg"), Path(tmp, "patch")
        proc = subprocess.run(["git", *IDENTITY, "mailinfo", str(msg), str(diff)], stdin=mail,
                              capture_output=True, timeout=60, cwd=tmp)
        if proc.returncode != 0:
            raise ConfigError(f"{path}: not a patch mail: {proc.stderr.decode(errors='replace')}")
        return (proc.stdout.decode(errors="replace"), msg.read_text(errors="replace"),
                diff.read_text(errors="replace"))


def _mail_digest(path: Path) -> str:
    header, msg, diff = _mailinfo(path)
    # git format-patch's signature (`-- ` and git's version) ends the mail,
    # not the diff.
    diff = re.sub(r"\n-- \n[^\n]*\n*\Z", "\n", diff)
    return hashlib.sha256(f"{header}\0{msg}\0{diff}".encode()).hexdigest()


def is_mbox(path: Path) -> bool:
    with open(path, "rb") as f:
        first = f.readline().rstrip(b"\r\n")
    return bool(MBOX_FROM.match(first))


def read_series(path: Path | None) -> Series:
    """A series file or an mbox (see the module's docstring); None: the base alone."""
    if path is None:
        return Series(None, [])
    if not path.is_file():
        raise ConfigError(f"series file not found: {path}")
    if is_mbox(path):
        return Series(path, read_mbox(path))
    patches = []
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        patch = path.parent / line
        if not patch.is_file():
            raise ConfigError(f"{path}:{n}: patch {line} not found")
        patches.append(Patch(patch.name, patch))
    return Series(path, patches)


def _slug(subject: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", subject).strip("-")[:52].rstrip("-") or "patch"


def read_mbox(path: Path) -> list[Patch]:
    """The patches of the mbox PATH, in order, each a file of its own."""
    data = path.read_bytes()
    out = cache_dir() / "mbox" / hashlib.sha256(data).hexdigest()[:16]
    if not out.is_dir():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix="split-", dir=out.parent))
        try:
            _split(path, data, tmp)
            os.rename(tmp, out)
        except OSError:
            # Another run split it first: theirs is the same.
            if not out.is_dir():
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    patches = [Patch(json.loads(f.with_suffix(".name").read_text()), f)
               for f in sorted(out.glob("*.patch"))]
    if not patches:
        raise ConfigError(f"{path}: an mbox without patches")
    return patches


def _split(path: Path, data: bytes, into: Path) -> None:
    # b4 writes mboxrd (body lines `>From ` escaped once more).
    mboxrd = ["--mboxrd"] if data.startswith(b"From mboxrd@z ") else []
    raw = into / "raw"
    raw.mkdir()
    proc = subprocess.run(["git", "mailsplit", *mboxrd, f"-o{raw}", str(path)],
                          capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise ConfigError(f"{path}: git mailsplit failed: {proc.stderr.strip()}")
    n = 0
    for k, mail in enumerate(sorted(raw.iterdir()), 1):
        header, _, diff = _mailinfo(mail)
        subject = next((ln[len("Subject: "):] for ln in header.splitlines()
                        if ln.startswith("Subject: ")), "").strip()
        if not diff.strip():
            with open(mail, "rb") as f:
                raw_subject = " ".join(str(BytesHeaderParser().parse(f).get("Subject", "")).split())
            if COVER_LETTER.search(raw_subject):
                continue
            raise ConfigError(f"{path}: message {k} ({raw_subject or 'no subject'}) "
                              "holds no patch")
        n += 1
        dest = into / f"{n:04d}-{_slug(subject)}.patch"
        mail.rename(dest)
        dest.with_suffix(".name").write_text(json.dumps(subject or dest.stem))
    shutil.rmtree(raw)


def _am_failure_details(output: str) -> str:
    keep = [ln.strip() for ln in output.splitlines()
            if re.search(r"error:|CONFLICT|patch failed|does not apply|Patch failed at"
                         r"|corrupt patch|does not exist in index", ln)]
    return "\n    ".join(keep or output.strip().splitlines()[-8:])


def _state_file(repo: Path) -> Path:
    return repo / ".git" / "harness-applied.json"


def apply_patch(repo: Path, patch: Patch) -> subprocess.CompletedProcess[str]:
    """`git am` PATCH onto HEAD; the caller looks at the result (and aborts)."""
    # --committer-date-is-author-date: the same series on the same base gives
    # the same commit ids, run after run.
    return git(repo, "am", "-q", "-3", "--committer-date-is-author-date",
               str(patch.path.resolve()), check=False)


def apply_series(repo: Path, base: str, series: Series) -> str:
    """Check out BASE plus SERIES in REPO; return the resulting commit id."""
    state = {"base": base, "series": series.digest()}
    sf = _state_file(repo)
    try:
        old = json.loads(sf.read_text())
    except (OSError, ValueError):
        old = {}
    head = rev_parse(repo, "HEAD") if (repo / ".git").exists() else ""
    # Nothing changed since the last run: leave file mtimes alone so that make
    # has nothing to do.
    if (old.get("base") == base and old.get("series") == state["series"]
            and old.get("head") == head and head
            and not git(repo, "status", "--porcelain", "--untracked-files=no").stdout.strip()):
        return head

    sf.unlink(missing_ok=True)
    git(repo, "am", "--abort", check=False)
    mtimes = _mtimes_of_changed(repo, head, base)
    git(repo, "checkout", "-q", "-f", "--detach", base)
    for patch in series.patches:
        proc = apply_patch(repo, patch)
        if proc.returncode != 0:
            details = _am_failure_details(proc.stdout + proc.stderr)
            git(repo, "am", "--abort", check=False)
            git(repo, "checkout", "-q", "-f", "--detach", base)
            raise SeriesError(f"patch {patch.name} does not apply to {base[:12]}:\n    {details}")
    new_head = rev_parse(repo, "HEAD")
    _restore_unchanged(repo, mtimes, head, new_head)
    state["head"] = new_head
    sf.write_text(json.dumps(state))
    return new_head


def _mtimes_of_changed(repo: Path, head: str, base: str) -> dict[str, int]:
    """Mtimes of the files that going back from HEAD to BASE rewrites."""
    if not head:
        return {}
    names = git(repo, "diff", "--name-only", "--no-renames", head, base).stdout.split("\n")
    out = {}
    for name in filter(None, names):
        try:
            out[name] = (repo / name).stat().st_mtime_ns
        except OSError:
            pass
    return out


def _restore_unchanged(repo: Path, mtimes: dict[str, int], old: str, new: str) -> None:
    """Give files that the re-application left as they were their old mtime.

    Re-applying a series starts from the base, so every file the old and
    the new series touch is rewritten, headers included, and make would
    recompile everything that includes them, even where the content came
    back the same (one patch edited, a patch added at the end). Only the
    files that really differ between the old and the new head keep the
    new mtime.
    """
    if not mtimes:
        return
    changed = set(git(repo, "diff", "--name-only", "--no-renames", old, new).stdout.split("\n"))
    for name, ns in mtimes.items():
        if name not in changed:
            try:
                os.utime(repo / name, ns=(ns, ns))
            except OSError:
                pass


def commit_subjects(repo: Path, base: str, head: str) -> list[str]:
    out = git(repo, "log", "--reverse", "--format=%h %s", f"{base}..{head}").stdout
    return out.splitlines()
