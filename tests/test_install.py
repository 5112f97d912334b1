"""install-deps.sh's Python part with the system Python, into a copy of the checkout.

Debian 12+ and Ubuntu 23.04+ mark their Python EXTERNALLY-MANAGED (PEP 668):
pip refuses to install into it, so the harness lives in the checkout's .venv/
and ./harness.sh runs it. Slow-ish (~20 s: a venv and pip installs from the
configured index), no kernel.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

SYSTEM_PYTHON = Path("/usr/bin/python3")
# What a fresh clone does not have (a copy of the working tree is tested, so
# uncommitted changes are too).
NOT_COPIED = shutil.ignore_patterns(".git", ".venv", ".tox", "*.egg-info", "__pycache__",
                                    ".pytest_cache", ".ruff_cache", "results", "build")


def _system_python_ok() -> bool:
    if not SYSTEM_PYTHON.exists():
        return False
    proc = subprocess.run([str(SYSTEM_PYTHON), "-c",
                           "import sys; sys.exit(sys.version_info < (3, 11))"])
    return proc.returncode == 0


@pytest.mark.skipif(not _system_python_ok() and not os.environ.get("CI"),
                    reason="no /usr/bin/python3 >= 3.11: not a Debian 12+/Ubuntu 24.04 host")
def test_python_part_makes_a_venv_that_the_launcher_runs(tmp_path):
    tree = tmp_path / "checkout"
    shutil.copytree(ROOT, tree, ignore=NOT_COPIED, symlinks=True)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("VIRTUAL_ENV", "PYTHON", "PIP_BREAK"))}
    # The launcher without the venv says what to run.
    proc = subprocess.run([str(tree / "harness.sh"), "--help"], capture_output=True, text=True,
                          env=env, timeout=60)
    assert proc.returncode == 1 and "install-deps.sh" in proc.stderr, proc.stderr
    proc = subprocess.run([str(tree / "install-deps.sh"), "--python-only"], capture_output=True,
                          text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
    base = subprocess.run([str(tree / ".venv/bin/python"), "-c",
                           "import sys; print(sys.base_prefix, sys.prefix)"],
                          capture_output=True, text=True, check=True).stdout.split()
    assert base == ["/usr", str(tree / ".venv")]
    for tool in ("harness", "tox", "pytest", "ruff"):
        assert (tree / ".venv/bin" / tool).is_file(), tool
    # From elsewhere and through a symlink (e.g. ~/.local/bin/harness) alike;
    # the package is the copy's own (editable), not the tree running this test.
    link = tmp_path / "bin" / "harness"
    link.parent.mkdir()
    link.symlink_to(tree / "harness.sh")
    for launcher in (tree / "harness.sh", link):
        proc = subprocess.run([str(launcher), "--help"], cwd=tmp_path, capture_output=True,
                              text=True, env=env, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert "build-and-test" in proc.stdout
    where = subprocess.run([str(tree / ".venv/bin/python"), "-c",
                            "import harness; print(harness.__file__)"], cwd=tmp_path,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where).resolve() == (tree / "harness" / "__init__.py").resolve()
    # Run again (an update): the venv is kept and still works.
    proc = subprocess.run([str(tree / "install-deps.sh"), "--python-only"], capture_output=True,
                          text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert subprocess.run([str(tree / "harness.sh"), "--help"], capture_output=True,
                          env=env, timeout=120).returncode == 0


def test_pip_into_the_system_python_is_what_the_venv_avoids():
    # The premise, on a host that has it: the system Python refuses pip.
    marker = list(SYSTEM_PYTHON.parent.parent.glob("lib/python3*/EXTERNALLY-MANAGED"))
    if not marker:
        pytest.skip("this host's /usr/bin/python3 is not externally managed")
    proc = subprocess.run([str(SYSTEM_PYTHON), "-m", "pip", "install", "--dry-run", "pyyaml"],
                          capture_output=True, text=True, timeout=120,
                          env={k: v for k, v in os.environ.items()
                               if k != "PIP_BREAK_SYSTEM_PACKAGES"})
    assert proc.returncode != 0
    assert "externally-managed-environment" in proc.stderr or "No module named pip" in proc.stderr


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci/run").read_text().strip().splitlines()
    assert ci[-2:] == ["./install-deps.sh", ".venv/bin/tox"]
    assert "```sh\n./install-deps.sh && ./harness.sh build-and-test\n```" in readme
    assert "```sh\n.venv/bin/tox\n```" in readme
    assert sys.version_info >= (3, 11)
