"""Stage 2, series: apply patches/series to the base with `git am -3`.

A patch that does not apply is named together with the files and hunks git
complained about, and the tree is put back on the base: no half-applied
state is left behind.
"""

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from harness.errors import ConfigError, SeriesError
from harness.gitutil import git, rev_parse


@dataclass
class Series:
    path: Path | None  # the series file; None for the base alone
    patches: list[Path]

    @property
    def label(self) -> str:
        return "series" if self.path else "vanilla"

    def digest(self) -> str:
        h = hashlib.sha256()
        for p in self.patches:
            h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
        return h.hexdigest()


def read_series(path: Path | None) -> Series:
    """Parse a quilt-style series file: one patch per line, `#` comments."""
    if path is None:
        return Series(None, [])
    if not path.is_file():
        raise ConfigError(f"series file not found: {path}")
    patches = []
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        patch = path.parent / line
        if not patch.is_file():
            raise ConfigError(f"{path}:{n}: patch {line} not found")
        patches.append(patch)
    return Series(path, patches)


def _am_failure_details(output: str) -> str:
    keep = [ln.strip() for ln in output.splitlines()
            if re.search(r"error:|CONFLICT|patch failed|does not apply|Patch failed at"
                         r"|corrupt patch|does not exist in index", ln)]
    return "\n    ".join(keep or output.strip().splitlines()[-8:])


def _state_file(repo: Path) -> Path:
    return repo / ".git" / "harness-applied.json"


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
        # --committer-date-is-author-date: the same series on the same base
        # gives the same commit ids, run after run.
        proc = git(repo, "am", "-q", "-3", "--committer-date-is-author-date", str(patch),
                   check=False)
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
