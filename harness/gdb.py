"""`harness boot --gdb`: QEMU's gdb stub on 127.0.0.1, and the gdb command that attaches.

QEMU listens with `-gdb tcp:127.0.0.1:PORT` (never any other address) and, with
--gdb-wait, starts with its CPUs stopped (`-S`) until gdb says `continue`. The
kernel boots with `nokaslr`, so the addresses in vmlinux are the addresses in the
guest (Documentation/dev-tools/gdb-kernel-debugging.rst).

The symbol file is the image's own copy of vmlinux (images/<kernel>/vmlinux), which
no later build overwrites. The lx-* helpers (lx-dmesg, lx-symbols, lx-ps, ...) are
the kernel's scripts/gdb, which `make scripts_gdb` puts in the build directory:
vmlinux-gdb.py and scripts/gdb/linux/ (links to the tree's scripts plus
constants.py, generated from the build's .config). gdb sources them explicitly;
the build directory is also added to gdb's auto-load safe path, so loading that
directory's vmlinux (or lx-symbols reloading it) does not refuse the helpers.
"""

from __future__ import annotations

import shlex
import shutil
import socket
from pathlib import Path

from harness.errors import ConfigError
from harness.target import Target, host_arch

LOOPBACK = "127.0.0.1"
CMDLINE = ("nokaslr",)  # appended to the kernel command line
HELPERS = "vmlinux-gdb.py"  # in the build directory, after `make scripts_gdb`


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def check_port(port: int) -> int:
    if not 1 <= port <= 65535:
        raise ConfigError(f"--gdb-port {port}: not a TCP port (1-65535)")
    return port


def qemu_args(port: int, wait: bool) -> list[str]:
    """QEMU's gdb stub on 127.0.0.1:PORT; with WAIT, the CPUs stay stopped until gdb
    continues them."""
    return ["-gdb", f"tcp:{LOOPBACK}:{check_port(port)}", *(["-S"] if wait else [])]


def gdb_binary(target: Target) -> str:
    """The host's gdb for its own architecture (and i386 on x86_64), else gdb-multiarch.

    A host without gdb but with gdb-multiarch (which debugs any architecture)
    gets gdb-multiarch for its own architecture too; Debian's plain gdb debugs
    only the host's.
    """
    native = target.native or (target.arch.name == "i386" and host_arch() == "x86_64")
    if native and (shutil.which("gdb") or not shutil.which("gdb-multiarch")):
        return "gdb"
    return "gdb-multiarch"


def helpers(build_dir: Path) -> Path | None:
    """The build directory's vmlinux-gdb.py, if `make scripts_gdb` made it."""
    path = build_dir / HELPERS
    return path if path.is_file() else None


def problems(target: Target, config: Path) -> list[str]:
    """What keeps the printed command from working as well as it could."""
    out = []
    binary = gdb_binary(target)
    if not shutil.which(binary):
        out.append(f"{binary} not found: sudo apt-get install {binary}")
    try:
        text = config.read_text()
    except OSError:
        text = ""
    if text and "CONFIG_DEBUG_INFO=y" not in text:
        out.append(f"{config}: no CONFIG_DEBUG_INFO, so gdb has symbols but no types "
                   "(boot an image built with --fragment kconfigs/debuginfo.config, or the "
                   "debug profile)")
    elif "CONFIG_DEBUG_INFO_REDUCED=y" in text:
        out.append(f"{config}: CONFIG_DEBUG_INFO_REDUCED: incomplete types, and the lx-* "
                   "helpers refuse to load")
    return out


def gdb_command(target: Target, vmlinux: Path, build_dir: Path, port: int) -> list[str]:
    """gdb with VMLINUX's symbols, the kernel's lx-* helpers (if the build directory
    has them) and attached to the stub; further `-ex` commands may be appended."""
    cmd = [gdb_binary(target), "-q", str(vmlinux),
           "-iex", f"add-auto-load-safe-path {build_dir}"]
    script = helpers(build_dir)
    if script:
        cmd += ["-ex", f"source {script}"]
    return [*cmd, "-ex", f"target remote {LOOPBACK}:{check_port(port)}"]


def printed(cmd: list[str]) -> str:
    """The command as printed: one line a shell runs as it is."""
    return shlex.join(cmd)
