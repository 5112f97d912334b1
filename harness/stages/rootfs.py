"""Stage 5, rootfs: an initramfs with busybox, the guest tests and our init.

The guest tests are compiled statically against the kernel tree's
kselftest headers. The archive is written by the kernel's own
usr/gen_init_cpio (device nodes without root), and cached by the content
of everything that goes into it.
"""

import hashlib
import os
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

from harness import printer
from harness.errors import BuildError, ConfigError, InfraError
from harness.lock import locked
from harness.target import X86_64, Arch

BUSYBOX = Path("/bin/busybox")
# Other architectures' busybox: Debian's busybox-static for that
# architecture, unpacked here by install-deps.sh (it cannot be installed
# beside the host's: both own /bin/busybox).
FOREIGN_BUSYBOX = Path("/usr/local/lib/harness")
INIT = Path(__file__).parent.with_name("guest_init.sh")  # harness/guest_init.sh
# What the guest tests compile against in the kernel tree.
SELFTEST_INPUTS = ["kselftest_harness.h", "kselftest.h", "cgroup"]


def _digest_paths(h: "hashlib._Hash", paths: list[Path]) -> None:
    for root in paths:
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for f in files:
            h.update(str(f.relative_to(root.parent)).encode() + b"\0" + f.read_bytes())


def busybox(arch: Arch) -> Path:
    if arch.deb_arch == X86_64.deb_arch:
        return BUSYBOX
    where = Path(os.environ.get("HARNESS_BUSYBOX_DIR", FOREIGN_BUSYBOX))
    return where / f"busybox-{arch.deb_arch}"


def check_busybox(arch: Arch) -> Path:
    """ARCH's guest busybox, or a ConfigError with the commands that install it."""
    box = busybox(arch)
    if box.exists():
        return box
    if box == BUSYBOX:
        fix = "    sudo apt-get install busybox-static   (or ./install-deps.sh)"
    else:
        deb = arch.deb_arch
        fix = (f"    ./install-deps.sh   (unpacks Debian's busybox-static:{deb} there), or by "
               f"hand:\n    sudo dpkg --add-architecture {deb} && sudo apt-get update\n"
               f"    cd \"$(mktemp -d)\" && apt-get download busybox-static:{deb} && "
               f"dpkg-deb -x busybox-static_*_{deb}.deb root &&\n"
               f"      sudo install -D -m 0755 root/bin/busybox {box}\n"
               f"    sudo dpkg --remove-architecture {deb}   (if it was not there before)")
    raise ConfigError(f"{box} not found: the {arch.name} guest's busybox. Install it with:\n{fix}")


def program_names(guest_tests: Path, timeout: int = 60) -> list[str] | None:
    """The programs GUEST_TESTS's Makefile puts in the rootfs, without building
    anything (its default goal's prerequisites under OUTPUT, read from `make -p`);
    None when that cannot be told (the build then names an unknown program)."""
    out = "/harness-programs"  # a directory that is never created: make only prints
    try:
        proc = subprocess.run(["make", "-pnq", "-C", str(guest_tests), f"OUTPUT={out}",
                               "KSFT=/harness-ksft", ".harness-no-such-goal"],
                              capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in proc.stdout.splitlines():
        if line.startswith(".DEFAULT_GOAL := "):
            goal = line.split(":= ", 1)[1].strip()
            break
    else:
        return None
    for line in proc.stdout.splitlines():
        if line.startswith(f"{goal}:"):
            deps = line.split(":", 1)[1].split()
            names = sorted(d.removeprefix(out + "/") for d in deps if d.startswith(out + "/"))
            return names or None
    return None


def rootfs_key(tree: Path, guest_tests: Path, arch: Arch = X86_64) -> str:
    h = hashlib.sha256()
    if arch != X86_64:  # the x86_64 key is what it always was: caches stay valid
        h.update(arch.name.encode())
    ksft = tree / "tools/testing/selftests"
    _digest_paths(h, [guest_tests, INIT, busybox(arch), tree / "usr/gen_init_cpio.c",
                      *(ksft / x for x in SELFTEST_INPUTS)])
    return h.hexdigest()[:16]


def gen_init_cpio_tool(tree: Path, cache: Path) -> Path:
    src = tree / "usr/gen_init_cpio.c"
    key = hashlib.sha256(src.read_bytes()).hexdigest()[:12]
    tool = cache / "tools" / f"gen_init_cpio-{key}"
    if not tool.exists():
        tool.parent.mkdir(parents=True, exist_ok=True)
        tmp = tool.with_suffix(".tmp")
        proc = _run_or_fail(["gcc", "-O2", "-o", str(tmp), str(src)], 300, text=True)
        if proc.returncode != 0:
            raise BuildError(f"compiling {src} failed:\n{proc.stderr}")
        tmp.rename(tool)
    return tool


def _run_or_fail(cmd: list[str], timeout: int, **kw: Any) -> subprocess.CompletedProcess:
    kw.setdefault("capture_output", "stdout" not in kw)
    try:
        return subprocess.run(cmd, timeout=timeout, **kw)
    except subprocess.TimeoutExpired:
        raise InfraError(f"{cmd[0]} timed out after {timeout}s") from None


def compile_guest_tests(tree: Path, guest_tests: Path, out: Path, log_path: Path,
                        arch: Arch = X86_64) -> None:
    if not (guest_tests / "Makefile").is_file():
        raise ConfigError(f"{guest_tests}: no Makefile")
    if not shutil.which(arch.user_cc[0]):
        raise ConfigError(f"{arch.user_cc[0]} not found: it compiles the {arch.name} guest "
                          "programs; run ./install-deps.sh")
    cmd = ["make", "-C", str(guest_tests), f"OUTPUT={out}",
           f"KSFT={tree / 'tools/testing/selftests'}", f"CC={shlex.join(arch.user_cc)}", "-j2"]
    with open(log_path, "a") as log:
        log.write(f"$ {' '.join(cmd)}\n")
        log.flush()
        proc = _run_or_fail(cmd, 900, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
        log.write(proc.stdout)
    if proc.returncode != 0:
        errs = [ln for ln in proc.stdout.splitlines() if "error" in ln][:15]
        raise BuildError("compiling the guest tests failed:\n"
                         + "\n".join(errs or proc.stdout.splitlines()[-15:])
                         + f"\n    full log: {log_path}")


def cpio_spec(tests: list[Path], box: Path = BUSYBOX) -> str:
    lines = [
        "dir /dev 0755 0 0",
        "nod /dev/console 0600 0 0 c 5 1",
        "nod /dev/null 0666 0 0 c 1 3",
        "dir /bin 0755 0 0",
        f"file /bin/busybox {box} 0755 0 0",
        f"file /init {INIT} 0755 0 0",
        "dir /tests 0755 0 0",
    ]
    for d in ("proc", "sys", "tmp", "root", "mnt", "mnt/scratch"):
        lines.append(f"dir /{d} 0755 0 0")
    lines += [f"file /tests/{t.name} {t} 0755 0 0" for t in tests]
    return "\n".join(lines) + "\n"


def guest_programs(rootfs_dir: Path) -> list[str]:
    return sorted(p.name for p in (rootfs_dir / "tests").iterdir() if p.is_file())


def default_selection(programs: list[str]) -> list[str]:
    """Every program but the benchmarks, which `harness bench` runs on its own."""
    return [p for p in programs if not p.startswith("bench_")]


def build_rootfs(tree: Path, guest_tests: Path, cache: Path, log_path: Path,
                 arch: Arch = X86_64) -> Path:
    """Return the directory holding initramfs.cpio and tests/ for this content."""
    box = check_busybox(arch)
    key = rootfs_key(tree, guest_tests, arch)
    out = cache / "rootfs" / key
    with locked(cache / "rootfs" / f"{key}.lock", "the rootfs build"):
        if (out / "initramfs.cpio").exists():
            printer.info(f"rootfs cached: {out}")
            return out
        tmp = out.with_name(key + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        (tmp / "tests").mkdir(parents=True)
        compile_guest_tests(tree, guest_tests, tmp / "tests", log_path, arch)
        # Keep only the programs; a Makefile may leave objects behind.
        tests = []
        for p in sorted((tmp / "tests").iterdir()):
            if p.is_file() and p.stat().st_mode & 0o111:
                tests.append(p)
            elif p.is_file():
                p.unlink()
            else:
                shutil.rmtree(p)
        (tmp / "initramfs.list").write_text(cpio_spec([out / "tests" / t.name for t in tests],
                                                      box))
        # gen_init_cpio reads the files at their final location.
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
        tool = gen_init_cpio_tool(tree, cache)
        with open(out / "initramfs.cpio.tmp", "wb") as f:
            proc = _run_or_fail([str(tool), "-t", "0", str(out / "initramfs.list")], 300,
                                stdout=f, stderr=subprocess.PIPE)
        if proc.returncode != 0:
            raise BuildError(f"gen_init_cpio failed: {proc.stderr.decode(errors='replace')}")
        (out / "initramfs.cpio.tmp").rename(out / "initramfs.cpio")
    return out
