"""Thin wrapper around git: every call is logged on failure, never via a shell."""

import subprocess
from pathlib import Path

from harness.errors import InfraError

# Commits the harness makes (the imported base, applied patches) need an
# identity even on a machine where git has none configured.
IDENTITY = ["-c", "user.name=harness", "-c", "user.email=harness@localhost"]
# No automatic gc in the cache's repositories: after the import's ~87000 loose
# objects the first `git am` started a background `git repack` that took a
# CPU from the cold build (issue 16). The objects stay loose; nothing here
# needs them packed.
NO_AUTO_GC = ["-c", "gc.auto=0", "-c", "maintenance.auto=false"]


def git(repo: Path, *args: str, check: bool = True, env: dict[str, str] | None = None,
        timeout: int = 600) -> subprocess.CompletedProcess[str]:
    cmd = ["git", *IDENTITY, *NO_AUTO_GC, "-C", str(repo), *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise InfraError(f"git {' '.join(args)} timed out after {timeout}s in {repo}") from None
    if check and proc.returncode != 0:
        raise InfraError(f"git {' '.join(args)} failed in {repo}:\n{proc.stderr.strip()}")
    return proc


def rev_parse(repo: Path, rev: str) -> str:
    return git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}").stdout.strip()
