"""Build targets: an architecture and a compiler, as data.

Each architecture is one frozen dataclass: how kbuild is called for it, where
its boot image lands, the Kconfig fragment it adds on top of the profile's,
the Debian architecture of its guest userland, the compiler of its static
guest programs, and how QEMU boots it. Nothing else in the harness branches
on the architecture; it reads these fields.

`--cc clang` builds with LLVM=1 (clang, lld and the llvm binutils), which
cross-compiles every architecture with the same binaries.
"""

from __future__ import annotations

import platform
import shutil
import subprocess
from dataclasses import dataclass

from harness.errors import ConfigError


@dataclass(frozen=True)
class QemuArch:
    binary: str
    machine: str
    console: str
    package: str  # the Debian package that ships the binary
    cpu: str = ""  # -cpu; "" = QEMU's default model
    kvm: bool = False  # KVM can run it on an x86_64 host
    extra: tuple[str, ...] = ()


@dataclass(frozen=True)
class Arch:
    name: str  # --arch
    kernel_arch: str  # make ARCH=
    srcarch: str  # its directory under arch/ (x86 for both x86_64 and i386)
    image: str  # boot image, relative to the build directory
    image_target: str  # the make target that builds it
    cross_compile: str  # CROSS_COMPILE= for gcc; "" = the host's gcc
    gcc_package: str  # the Debian package of that gcc
    deb_arch: str  # Debian architecture of the guest userland
    user_cc: tuple[str, ...]  # compiles the static guest programs
    qemu: QemuArch
    fragment: str = ""  # kconfigs/ fragment added after the profile's, "" = none


# QEMU's default model plus RDRAND (TCG emulates it; KVM passes the host's):
# the kernel seeds its RNG from it at boot. Without it the first read of
# /dev/urandom (the guest init's mke2fs, for a UUID) waits ~2.5 s under TCG
# for jitter entropy, more than the kernel takes to boot.
X86_CPU = "qemu64,+rdrand"
X86_64 = Arch(
    name="x86_64", kernel_arch="x86_64", srcarch="x86",
    image="arch/x86/boot/bzImage", image_target="bzImage",
    cross_compile="", gcc_package="build-essential", deb_arch="amd64", user_cc=("gcc",),
    qemu=QemuArch(binary="qemu-system-x86_64", machine="pc", console="ttyS0",
                  package="qemu-system-x86", kvm=True, cpu=X86_CPU))
# The host's gcc builds the kernel (kbuild passes -m32). The static guest
# programs need a 32-bit libc: Debian's i686 cross gcc has one (gcc-multilib
# would too, but Debian does not let it be installed beside any cross gcc).
I386 = Arch(
    name="i386", kernel_arch="i386", srcarch="x86",
    image="arch/x86/boot/bzImage", image_target="bzImage",
    cross_compile="", gcc_package="build-essential", deb_arch="i386",
    user_cc=("i686-linux-gnu-gcc",),
    qemu=QemuArch(binary="qemu-system-i386", machine="pc", console="ttyS0",
                  package="qemu-system-x86", cpu="qemu32,+rdrand"),
    fragment="kconfigs/arch/i386.config")
# -M virt with its device tree; `-cpu max` with the implementation-defined
# pointer-authentication algorithm, which TCG runs several times faster than
# the architected QARMA5.
ARM64 = Arch(
    name="arm64", kernel_arch="arm64", srcarch="arm64",
    image="arch/arm64/boot/Image", image_target="Image",
    cross_compile="aarch64-linux-gnu-", gcc_package="gcc-aarch64-linux-gnu", deb_arch="arm64",
    user_cc=("aarch64-linux-gnu-gcc",),
    qemu=QemuArch(binary="qemu-system-aarch64", machine="virt", console="ttyAMA0",
                  package="qemu-system-arm", cpu="max,pauth-impdef=on"),
    fragment="kconfigs/arch/arm64.config")

ARCHES = {a.name: a for a in (X86_64, I386, ARM64)}
COMPILERS = ("gcc", "clang")


@dataclass(frozen=True)
class Target:
    arch: Arch = X86_64
    cc: str = "gcc"

    @property
    def name(self) -> str:
        """x86_64, arm64, x86_64-clang, ...: build directories and reports."""
        return self.arch.name if self.cc == "gcc" else f"{self.arch.name}-{self.cc}"

    @property
    def native(self) -> bool:
        return self.arch.name == host_arch()

    def make_vars(self, ccache: bool = False) -> list[str]:
        """ARCH, toolchain and CC for every make of this target (config included:
        Kconfig probes the compiler)."""
        out = [f"ARCH={self.arch.kernel_arch}"]
        if self.cc == "clang":
            out.append("LLVM=1")
        elif self.arch.cross_compile:
            out.append(f"CROSS_COMPILE={self.arch.cross_compile}")
        if ccache:
            out.append(f"CC=ccache {self.compiler()}")
        return out

    def compiler(self) -> str:
        return "clang" if self.cc == "clang" else f"{self.arch.cross_compile}gcc"

    def compiler_version(self) -> str:
        try:
            out = subprocess.run([self.compiler(), "--version"], capture_output=True,
                                 text=True, timeout=60).stdout
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return out.partition("\n")[0]

    def check_tools(self) -> None:
        """A clear error naming the package, before any make runs."""
        need = {self.compiler(): "clang" if self.cc == "clang" else self.arch.gcc_package}
        if self.cc == "clang":
            need.update({"ld.lld": "lld", "llvm-ar": "llvm"})
        for tool, pkg in need.items():
            if not shutil.which(tool):
                raise ConfigError(f"{tool} not found (target {self.name}): sudo apt-get install "
                                  f"{pkg}, or run ./install-deps.sh")


def host_arch() -> str:
    m = platform.machine()
    return {"x86_64": "x86_64", "aarch64": "arm64", "i686": "i386"}.get(m, m)


def parse_target(arch: str = "x86_64", cc: str = "gcc", where: str = "") -> Target:
    prefix = f"{where}: " if where else ""
    if arch not in ARCHES:
        raise ConfigError(f"{prefix}unknown arch {arch!r} (known: {', '.join(ARCHES)})")
    if cc not in COMPILERS:
        raise ConfigError(f"{prefix}unknown compiler {cc!r} (known: {', '.join(COMPILERS)})")
    return Target(ARCHES[arch], cc)


DEFAULT = Target()  # x86_64, gcc: what a profile without arch/cc builds
