"""gitutil.py: git in the cache's repositories."""

import subprocess
from pathlib import Path

from harness.gitutil import git


def test_git_in_the_cache_never_starts_an_automatic_gc(tmp_path: Path):
    # After the import's ~87000 loose objects, the first `git am` started a
    # background `git repack` that took a CPU from the cold build.
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    assert git(tmp_path, "config", "--get", "gc.auto").stdout.strip() == "0"
    assert git(tmp_path, "config", "--get", "maintenance.auto").stdout.strip() == "false"
