"""QEMU command lines, per-architecture settings as data, and KVM probing."""

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from harness.errors import ConfigError
from harness.profile import QemuConfig, size_bytes
from harness.selection import cmdline_entry
from harness.target import QemuArch

# In the spirit of LKP: any oops or lockup panics, and a panic ends the VM
# at once instead of hanging on a frozen console.
BASE_CMDLINE = ("panic=-1", "oops=panic", "softlockup_panic=1", "nmi_watchdog=panic",
                "hung_task_panic=1", "rdinit=/init")


def kernel_cmdline(arch: QemuArch, tests: list[str], per_test: int, extra: list[str],
                   shell: bool = False, cpus: int | None = None,
                   cases: Mapping[str, tuple[str, ...]] | None = None) -> str:
    """CASES: the test cases to run of some of TESTS (harness/selection.py); the
    guest init passes them to the program (harness.tests=prog:case:case,prog)."""
    args = [f"console={arch.console},115200", *BASE_CMDLINE]
    if cpus is not None:
        # The CPUs asked of QEMU, for the smoke test to compare with what the
        # guest brought up. Unknown NAME=value parameters reach init's
        # environment (and stay readable in /proc/cmdline, for SSH runs).
        args.append(f"HARNESS_CPUS={cpus}")
    if shell:
        args.append("harness.shell=1")
    else:
        cases = cases or {}
        entries = [cmdline_entry(t, cases.get(t, ())) for t in tests]
        args += [f"harness.tests={','.join(entries)}", f"harness.per_test={per_test}"]
    return " ".join([*args, *extra])


def accel_option(accel: str, cfg: QemuConfig) -> str:
    """The -accel value: TCG with several vCPUs runs them as the profile's
    qemu.tcg_threads says, one host thread each or round-robin on one.

    icount needs single-threaded TCG (QEMU refuses thread=multi with it), so
    icount runs (harness bench) stay round-robin on one host thread.
    """
    if cfg.tcg_threads not in ("multi", "single"):
        raise ConfigError(f"qemu.tcg_threads: {cfg.tcg_threads!r} is neither multi nor single")
    if accel == "tcg" and cfg.smp > 1 and not cfg.icount:
        return f"tcg,thread={cfg.tcg_threads}"
    return accel


# The scratch disk as the guest sees it: the first virtio-blk device.
SCRATCH_DEVICE = "/dev/vda"


@contextlib.contextmanager
def scratch_disk(size: str) -> Iterator[list[str]]:
    """QEMU arguments for the guest's page-cache disk, a fresh sparse file of SIZE
    that is deleted after the boot: nothing of one run's page cache survives into
    the next. virtio-blk, so reads are real block I/O (requests, interrupts,
    readahead) rather than brd's memcpy; the guest init, told so by
    harness.disk=SCRATCH_DEVICE, makes its filesystem there (guest_init.sh)."""
    with tempfile.TemporaryDirectory(prefix="harness-disk-") as tmp:
        image = Path(tmp) / "scratch.img"
        with open(image, "wb") as f:
            os.truncate(f.fileno(), size_bytes(size))
        yield ["-drive", f"file={image},if=virtio,format=raw,cache=writeback"]


def qemu_command(arch: QemuArch, cfg: QemuConfig, accel: str, kernel: Path, initrd: Path,
                 cmdline: str, interactive: bool = False, name: str = "harness") -> list[str]:
    # -name lets a user (and our tests) find the VM of a given run.
    cmd = [arch.binary, "-name", name, "-M", cfg.machine or arch.machine,
           "-accel", accel_option(accel, cfg), "-m", cfg.memory,
           "-smp", str(cfg.smp), "-kernel", str(kernel), "-initrd", str(initrd),
           "-append", cmdline, "-no-reboot", "-nodefaults", "-display", "none"]
    # No `-cpu host`: under nested virtualization it aborts QEMU ("failed to
    # set MSR 0x10a"); the default CPU model works everywhere on x86.
    if arch.cpu:
        cmd += ["-cpu", arch.cpu]
    if cfg.icount and accel == "tcg":
        cmd += ["-icount", "shift=0,sleep=off"]
    # Interactive: serial and monitor share stdio (Ctrl-A x quits); automated
    # runs get the bare serial console.
    cmd += ["-serial", "mon:stdio"] if interactive else ["-serial", "stdio"]
    return [*cmd, *arch.extra, *cfg.extra_args]


def kvm_device_usable() -> tuple[bool, str]:
    if not os.path.exists("/dev/kvm"):
        return False, "/dev/kvm does not exist"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False, "/dev/kvm is not readable and writable by this user"
    return True, ""


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


class KvmVerdicts:
    """Remembers, per host boot, whether KVM actually ran a guest here.

    A /dev/kvm that exists but hangs guests (nested virtualization) costs the
    probe timeout once per host boot, not once per run.
    """

    def __init__(self, cache: Path) -> None:
        self.path = cache / "kvm-verdict.json"

    def get(self) -> bool | None:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        return data.get("works") if data.get("boot_id") == _boot_id() else None

    def put(self, works: bool, reason: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps({"boot_id": _boot_id(), "works": works,
                                         "reason": reason}))


def choose_accel(requested: str, cache: Path, arch: QemuArch | None = None
                 ) -> tuple[list[str], str]:
    """Accelerators to try in order, and why."""
    if requested == "tcg":
        return ["tcg"], "requested"
    if arch is not None and not arch.kvm:
        if requested == "kvm":
            raise ConfigError(f"--accel kvm: KVM cannot run {arch.binary} guests on this host")
        return ["tcg"], "not this host's architecture"
    ok, why = kvm_device_usable()
    if requested == "kvm":
        return ["kvm"], "requested" if ok else f"requested, but {why}"
    if not ok:
        return ["tcg"], why
    verdict = KvmVerdicts(cache).get()
    if verdict is False:
        return ["tcg"], "KVM hung a guest earlier on this host boot"
    return ["kvm", "tcg"], "trying KVM, TCG if it does not boot"


def qemu_available(arch: QemuArch) -> bool:
    return shutil.which(arch.binary) is not None
