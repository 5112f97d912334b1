"""build.py with a real make on a tiny Makefile: timeouts and error reporting."""

import time

import pytest

from harness.errors import BuildError
from harness.stages import build


@pytest.fixture
def tiny_make(monkeypatch, tmp_path):
    monkeypatch.setattr(build, "make_command",
                        lambda tree, bd, jobs, goals=(), target=None, extra=():
                        ["make", "-C", str(tree), *(goals or ["bzImage"])])
    return tmp_path


def test_a_silent_hang_times_out(tiny_make):
    (tiny_make / "Makefile").write_text("bzImage:\n\tsleep 60\n")
    t0 = time.monotonic()
    with pytest.raises(BuildError, match="timed out after 2s"):
        build.build(tiny_make, tiny_make, 1, tiny_make / "log", timeout=2)
    assert time.monotonic() - t0 < 30


def test_failure_shows_the_first_compiler_error(tiny_make):
    (tiny_make / "Makefile").write_text(
        "bzImage:\n\t@echo '  CC      fs/a.o'\n"
        "\t@echo \"fs/a.c:3:5: error: 'x' undeclared\"\n\t@false\n")
    with pytest.raises(BuildError) as e:
        build.build(tiny_make, tiny_make, 1, tiny_make / "log", timeout=60)
    assert "fs/a.c:3:5: error: 'x' undeclared" in str(e.value)
    assert "fs/a.c:3:5" in (tiny_make / "log").read_text()


def test_linker_errors_of_every_toolchain_are_first_errors():
    lines = ["  LD      vmlinux", "noise",
             "aarch64-linux-gnu-ld: mm/memcontrol.o: undefined reference to `foo'"]
    assert build.first_errors(lines).splitlines()[-1].startswith("aarch64-linux-gnu-ld:")
    lines = ["  LD      vmlinux", "ld.lld: error: undefined symbol: foo"]
    assert "ld.lld: error" in build.first_errors(lines, limit=1)
