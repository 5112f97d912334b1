"""Stage 1, source: a kernel git repository the harness owns.

The default source is Debian's linux-source-6.12 tarball, extracted once into
the cache and committed as the tag `base`, so that the series applies as
commits and `git bisect` works. A user's tree (--source PATH) is never
touched: we use a `git clone --shared` scratch clone of it.
"""

import hashlib
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from harness import printer
from harness.errors import ConfigError, InfraError
from harness.gitutil import git, rev_parse
from harness.lock import locked
from harness.profile import SourceConfig


@dataclass
class SourceTree:
    repo: Path  # our work tree; safe to check out and reset
    base: str  # commit id of the base
    key: str  # identifies the source, for build directory names
    description: str  # e.g. "Debian linux-source-6.12 (6.12.117)"
    version: str  # kernel version from the base's Makefile


def source_key(cfg: SourceConfig) -> str:
    """Cheap identity of the source, without touching the tree."""
    if cfg.path:
        return "tree-" + hashlib.sha1(str(Path(cfg.path).resolve()).encode()).hexdigest()[:12]
    tarball = Path(cfg.tarball)
    try:
        st = tarball.stat()
    except FileNotFoundError:
        raise ConfigError(
            f"kernel source tarball {tarball} not found.\n"
            "    Install it with: sudo apt-get install linux-source-6.12\n"
            "    or pass --source PATH to use your own kernel git tree."
        ) from None
    ident = f"{tarball.resolve()}:{st.st_size}:{int(st.st_mtime)}"
    return "debian-" + hashlib.sha1(ident.encode()).hexdigest()[:12]


def _run(cmd: list[str], timeout: int) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise InfraError(f"{' '.join(cmd[:3])} ... timed out after {timeout}s") from None


def makefile_version(repo: Path, rev: str) -> str:
    text = git(repo, "show", f"{rev}:Makefile").stdout
    fields = dict(re.findall(r"^(VERSION|PATCHLEVEL|SUBLEVEL|EXTRAVERSION)[ \t]*=[ \t]*(\S*)", text,
                             re.M))
    v = f"{fields.get('VERSION', '?')}.{fields.get('PATCHLEVEL', '?')}"
    if fields.get("SUBLEVEL", "0") != "0":
        v += f".{fields['SUBLEVEL']}"
    return v + fields.get("EXTRAVERSION", "")


def _strip_debian_gitignore(tree: Path) -> None:
    # Debian's tarball ends its .gitignore with "/*": everything at the top
    # level would be ignored and `git add -A` would add nothing.
    gi = tree / ".gitignore"
    if gi.exists():
        text = gi.read_text()
        cut = text.find("# Debian packaging")
        if cut >= 0:
            gi.write_text(text[:cut])


def _import_tarball(tarball: Path, repo: Path) -> None:
    tmp = repo.with_name(repo.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    printer.stage(f"Extracting {tarball} into the cache (once) ...")
    proc = _run(["tar", "-xf", str(tarball), "-C", str(tmp), "--strip-components=1"], 1800)
    if proc.returncode != 0:
        raise InfraError(f"extracting {tarball} failed:\n{proc.stderr.strip()}")
    _strip_debian_gitignore(tmp)
    printer.stage("Importing the source into git (once) ...")
    git(tmp, "init", "-q", "-b", "harness")
    git(tmp, "add", "-A", timeout=1800)
    git(tmp, "commit", "-q", "-m", f"Import {tarball.name}", timeout=1800)
    git(tmp, "tag", "base")
    os.rename(tmp, repo)


def _debian_source(cfg: SourceConfig, cache: Path, key: str) -> SourceTree:
    tarball = Path(cfg.tarball)
    repo = cache / "src" / key
    with locked(cache / "src" / f"{key}.lock", "the source import"):
        if not (repo / ".git").is_dir():
            _import_tarball(tarball, repo)
    base = rev_parse(repo, "base")
    version = makefile_version(repo, base)
    return SourceTree(repo, base, key, f"{tarball} ({version})", version)


def _user_source(cfg: SourceConfig, cache: Path, key: str) -> SourceTree:
    user = Path(cfg.path).resolve()
    probe = _run(["git", "-C", str(user), "rev-parse", "--git-dir"], 60)
    if probe.returncode != 0:
        raise ConfigError(f"--source {user}: not a git repository")
    sha = _run(["git", "-C", str(user), "rev-parse", "--verify", "--quiet",
                f"{cfg.rev}^{{commit}}"], 60).stdout.strip()
    if not sha:
        raise ConfigError(f"--source {user}: no commit {cfg.rev!r}")
    repo = cache / "src" / key
    with locked(cache / "src" / f"{key}.lock", "the source clone"):
        if not (repo / ".git").is_dir():
            printer.stage(f"Making a scratch clone of {user} (your checkout is not touched) ...")
            tmp = repo.with_name(repo.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            # --shared borrows the objects of the user's repository: instant,
            # and every commit there is reachable here by id.
            proc = _run(["git", "clone", "-q", "--shared", "--no-checkout", str(user), str(tmp)],
                        600)
            if proc.returncode != 0:
                raise InfraError(f"git clone --shared {user} failed:\n{proc.stderr.strip()}")
            os.rename(tmp, repo)
        git(repo, "tag", "-f", "base", sha)
    version = makefile_version(repo, sha)
    return SourceTree(repo, sha, key, f"{user} at {cfg.rev} = {sha[:12]} ({version})", version)


def prepare_source(cfg: SourceConfig, cache: Path) -> SourceTree:
    key = source_key(cfg)
    if cfg.path:
        return _user_source(cfg, cache, key)
    return _debian_source(cfg, cache, key)
