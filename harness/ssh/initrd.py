"""The SSH cpio: dropbear, its libraries, the keys and guest_ssh.sh on top of the
cached initramfs."""

import re
import shutil
import subprocess
from pathlib import Path

from harness.errors import HarnessError
from harness.profile import cache_dir
from harness.ssh.keys import DROPBEAR, Keys, missing_dropbear
from harness.stages.rootfs import gen_init_cpio_tool

GUEST_SCRIPT = Path(__file__).parents[1] / "guest_ssh.sh"
HOST_KEY_GUEST = "/etc/dropbear/dropbear_ed25519_host_key"

_LDD_PATH = re.compile(r"(?:=>\s*)?(/\S+)\s+\(0x[0-9a-f]+\)")


def parse_ldd(text: str) -> list[str]:
    """Absolute paths ldd resolved (libraries and the loader; not the vDSO)."""
    return [m.group(1) for ln in text.splitlines() if (m := _LDD_PATH.search(ln))]


def shared_libraries(binary: Path) -> list[str]:
    proc = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, timeout=60)
    if "not a dynamic executable" in proc.stdout + proc.stderr:
        return []
    if proc.returncode != 0:
        raise HarnessError(f"ldd {binary} failed: {proc.stderr.strip()}")
    return parse_ldd(proc.stdout)


def ssh_cpio_spec(keys: Keys, workdir: Path, libraries: list[str]) -> str:
    """gen_init_cpio spec of everything the SSH guest needs on top of the base."""
    (workdir / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (workdir / "group").write_text("root:x:0:\ntty:x:5:\n")
    (workdir / "shells").write_text("/bin/sh\n")
    (workdir / "authorized_keys").write_text(keys.client_pub + "\n")
    files = [("/usr/sbin/dropbear", DROPBEAR, 0o755),
             *((lib, Path(lib).resolve(), 0o755) for lib in libraries),
             ("/etc/passwd", workdir / "passwd", 0o644),
             ("/etc/group", workdir / "group", 0o644),
             ("/etc/shells", workdir / "shells", 0o644),
             ("/etc/harness/ssh.sh", GUEST_SCRIPT, 0o644),
             (HOST_KEY_GUEST, keys.host, 0o600),
             ("/root/.ssh/authorized_keys", workdir / "authorized_keys", 0o600)]
    # dropbear refuses keys in a group- or world-writable home or .ssh.
    modes = {"/root": 0o700, "/root/.ssh": 0o700}
    dirs: list[str] = []
    for guest, _, _ in files:
        for parent in reversed(Path(guest).parents):
            if str(parent) != "/" and str(parent) not in dirs:
                dirs.append(str(parent))
    lines = [f"dir {d} {modes.get(d, 0o755):o} 0 0" for d in dirs]
    lines += [f"file {guest} {host} {mode:o} 0 0" for guest, host, mode in files]
    return "\n".join(lines) + "\n"


def build_initrd(tree: Path, base_cpio: Path, keys: Keys, workdir: Path) -> Path:
    """The cached initramfs followed by this run's SSH cpio, as one file."""
    if not DROPBEAR.exists():
        raise missing_dropbear()
    spec = workdir / "ssh-initramfs.list"
    spec.write_text(ssh_cpio_spec(keys, workdir, shared_libraries(DROPBEAR)))
    tool = gen_init_cpio_tool(tree, cache_dir())
    out = workdir / "initramfs-ssh.cpio"
    with open(out, "wb") as f:
        with open(base_cpio, "rb") as base:
            shutil.copyfileobj(base, f)
        f.flush()
        proc = subprocess.run([str(tool), "-t", "0", str(spec)], stdout=f,
                              stderr=subprocess.PIPE, timeout=300)
    if proc.returncode != 0:
        raise HarnessError(f"gen_init_cpio (SSH cpio) failed: "
                           f"{proc.stderr.decode(errors='replace')}")
    return out
