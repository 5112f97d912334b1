"""Targets (harness/target.py): per-architecture data and the make/QEMU lines it gives."""

import hashlib
from pathlib import Path

import pytest

from harness import qemu
from harness.errors import ConfigError
from harness.profile import QemuConfig
from harness.stages import kconfig, rootfs
from harness.target import ARM64, DEFAULT, I386, X86_64, Target, parse_target


def test_make_vars_per_target():
    assert DEFAULT.make_vars() == ["ARCH=x86_64"]
    assert DEFAULT.make_vars(ccache=True) == ["ARCH=x86_64", "CC=ccache gcc"]
    assert Target(I386).make_vars() == ["ARCH=i386"]
    assert Target(ARM64).make_vars(ccache=True) == [
        "ARCH=arm64", "CROSS_COMPILE=aarch64-linux-gnu-", "CC=ccache aarch64-linux-gnu-gcc"]
    # LLVM=1 cross-compiles by itself: no CROSS_COMPILE.
    assert Target(ARM64, "clang").make_vars(ccache=True) == [
        "ARCH=arm64", "LLVM=1", "CC=ccache clang"]


def test_names_and_errors():
    assert parse_target().name == "x86_64"
    assert parse_target("x86_64", "clang").name == "x86_64-clang"
    assert parse_target("arm64").name == "arm64"
    with pytest.raises(ConfigError, match="p.yaml: unknown arch 'riscv'"):
        parse_target("riscv", where="p.yaml")
    with pytest.raises(ConfigError, match="unknown compiler 'icc'"):
        parse_target(cc="icc")


def test_the_default_target_keeps_its_build_directory(tmp_path):
    frag = tmp_path / "f.config"
    frag.write_text("CONFIG_X=y\n")
    old = hashlib.sha256(b"x86_64")  # what the digest was before targets existed
    old.update(frag.read_bytes())
    assert kconfig.fragments_digest([frag]) == old.hexdigest()[:12]
    others = {kconfig.fragments_digest([frag], parse_target(a, c))
              for a in ("x86_64", "i386", "arm64") for c in ("gcc", "clang")}
    assert len(others) == 6


def test_arm64_boots_virt_with_its_console():
    line = qemu.kernel_cmdline(ARM64.qemu, ["smoke"], 60, [])
    assert line.startswith("console=ttyAMA0,115200 ")
    cmd = qemu.qemu_command(ARM64.qemu, QemuConfig(), "tcg", Path("/k/Image"), Path("/r"), line)
    assert cmd[0] == "qemu-system-aarch64"
    assert cmd[cmd.index("-M") + 1] == "virt"
    assert cmd[cmd.index("-cpu") + 1].startswith("max")
    x86 = qemu.qemu_command(X86_64.qemu, QemuConfig(), "tcg", Path("/k"), Path("/r"), line)
    assert x86[x86.index("-M") + 1] == "pc" and x86[x86.index("-cpu") + 1] == "qemu64,+rdrand"
    # A profile's machine still wins.
    q35 = qemu.qemu_command(X86_64.qemu, QemuConfig(machine="q35"), "tcg", Path("/k"),
                            Path("/r"), line)
    assert q35[q35.index("-M") + 1] == "q35"


def test_foreign_guests_never_try_kvm(tmp_path):
    assert qemu.choose_accel("auto", tmp_path, ARM64.qemu) == (["tcg"],
                                                              "not this host's architecture")
    with pytest.raises(ConfigError, match="KVM cannot run qemu-system-aarch64"):
        qemu.choose_accel("kvm", tmp_path, ARM64.qemu)


def test_rootfs_per_architecture(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_BUSYBOX_DIR", str(tmp_path))
    assert rootfs.busybox(X86_64) == rootfs.BUSYBOX
    assert rootfs.busybox(ARM64) == tmp_path / "busybox-arm64"
    assert "file /bin/busybox /b/bb 0755" in rootfs.cpio_spec([], Path("/b/bb"))


def test_every_arch_fragment_exists():
    root = Path(__file__).resolve().parents[1]
    for arch in (I386, ARM64):
        assert (root / arch.fragment).is_file(), arch.fragment
