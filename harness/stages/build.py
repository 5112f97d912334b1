"""Stage 4, build: an incremental out-of-tree `make bzImage` (or the target's image).

The build directory is kept per source and config, so the next run only
rebuilds what changed. Fixed KBUILD_BUILD_* values keep ccache hits and
images reproducible. A failure shows the compiler's first errors.
"""

import os
import re
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness import printer
from harness.errors import BuildError, InfraError
from harness.target import DEFAULT, Target

_ERROR = re.compile(r"^\S+:\d+(:\d+)?: (fatal )?error: "
                    r"|^(\S+-)?ld(\.lld)?: .*(undefined (reference|symbol)|error)"
                    r"|\*\*\* .*(Error|No rule)")
_WARNING = re.compile(r"^(\S+?):(\d+)(?::\d+)?: warning: (.*)$")
_PROGRESS = re.compile(r"^\s+(CC|LD|AR|AS|HOSTCC|OBJCOPY|GEN)\s+(\S+)")


@dataclass
class BuildResult:
    image: Path
    seconds: float
    release: str
    warnings: list[str] = field(default_factory=list)  # "file:line: warning: text"


def build_env(tree: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(KBUILD_BUILD_TIMESTAMP="1970-01-01 00:00:00 UTC", KBUILD_BUILD_USER="harness",
               KBUILD_BUILD_HOST="harness", LC_ALL="C")
    # Relative paths in ccache's hash: worktrees and build directories in
    # other places (a developer's clone, CI's cache) share hits.
    env.setdefault("CCACHE_BASEDIR", str(tree))
    return env


def make_command(tree: Path, build_dir: Path, jobs: int, goals: tuple[str, ...] = (),
                 target: Target = DEFAULT, extra: tuple[str, ...] = ()) -> list[str]:
    """make for TARGET; GOALS default to the target's boot image (and vmlinux), plus
    scripts_gdb (the lx-* helpers of `harness boot --gdb`) when the config asks for them:
    `make all` would make them, `make bzImage` does not."""
    return ["make", "-C", str(tree), f"O={build_dir}",
            *target.make_vars(ccache=bool(shutil.which("ccache"))), *extra, f"-j{jobs}",
            *(goals or (target.arch.image_target, *_gdb_scripts(build_dir)))]


def _gdb_scripts(build_dir: Path) -> tuple[str, ...]:
    try:
        config = (build_dir / ".config").read_text()
    except OSError:
        return ()
    return ("scripts_gdb",) if "\nCONFIG_GDB_SCRIPTS=y\n" in config else ()


def first_errors(lines: list[str], limit: int = 20) -> str:
    """The first compiler/linker errors with a little context, else the tail."""
    for i, line in enumerate(lines):
        if _ERROR.search(line):
            return "\n".join(lines[max(0, i - 2):i + limit])
    return "\n".join(lines[-limit:])


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def build(tree: Path, build_dir: Path, jobs: int, log_path: Path, timeout: int,
          target: Target = DEFAULT, goals: tuple[str, ...] = (),
          extra: tuple[str, ...] = ()) -> BuildResult:
    """Build the boot image, or only GOALS (objects: no image, no link)."""
    target.check_tools()
    cmd = make_command(tree, build_dir, jobs, goals, target, extra)
    t0 = time.monotonic()
    lines: list[str] = []
    warnings: list[str] = []
    objects = 0
    last_note = t0
    tty = printer.is_tty()
    # Line-buffered: a killed run leaves the log up to its last line.
    with open(log_path, "a", buffering=1) as log:
        log.write(f"$ {' '.join(cmd)}\n")
        log.flush()
        try:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True, errors="replace", env=build_env(tree),
                                    start_new_session=True)
        except OSError as e:
            raise InfraError(f"cannot run make: {e}") from None
        # A watchdog, not a check per output line: a make that hangs silently
        # must time out too. Killing the group ends the read loop below.
        watchdog = threading.Timer(timeout, _kill_group, [proc])
        watchdog.daemon = True
        watchdog.start()
        try:
            assert proc.stdout
            for line in proc.stdout:
                log.write(line)
                line = line.rstrip("\n")
                lines.append(line)
                if printer.verbose:
                    print(line, flush=True)
                m = _WARNING.match(line)
                if m:
                    warnings.append(line)
                if _PROGRESS.match(line):
                    objects += 1
                    now = time.monotonic()
                    if tty and not printer.verbose:
                        print(f"\r    {objects} objects, {now - t0:.0f}s ... ", end="", flush=True)
                    elif now - last_note > 30 and not printer.verbose:
                        printer.info(f"{objects} objects built, {now - t0:.0f}s")
                        last_note = now
            proc.wait()
        except BaseException:
            _kill_group(proc)
            raise
        finally:
            watchdog.cancel()
            if tty and objects and not printer.verbose:
                print()
    secs = time.monotonic() - t0
    if secs >= timeout and proc.returncode != 0:
        raise BuildError(f"build timed out after {timeout}s; log: {log_path}")
    if proc.returncode != 0:
        raise BuildError(f"kernel build failed (make exit {proc.returncode}); first errors:\n"
                         f"{first_errors(lines)}\n    full log: {log_path}")
    release = (build_dir / "include/config/kernel.release").read_text().strip()
    return BuildResult(build_dir / target.arch.image if not goals else build_dir, secs, release,
                       warnings)
