#!/bin/sh
# Everything `harness` needs on a Debian/Ubuntu x86_64 host: the kernel
# source, QEMU, the guest userland, kernel build tools, and the Python package.
set -eu
cd "$(dirname "$0")"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
# The other targets' guest userland: Debian's busybox-static for arm64 and
# i386 (fetched, not installed: it would replace the host's /bin/busybox).
$SUDO dpkg --add-architecture arm64
$SUDO dpkg --add-architecture i386
$SUDO apt-get update -qq
# --no-install-recommends: qemu-system-x86 would otherwise pull in GTK.
# Targets (harness --arch/--cc): the aarch64 and i686 cross gcc with their
# libcs build the static guest programs (and the arm64 kernel); clang, lld
# and llvm build any target with LLVM=1; qemu-system-arm boots arm64.
# gdb-multiarch: `harness boot --gdb` on any target.
$SUDO apt-get install -y -qq --no-install-recommends \
	linux-source-6.12 qemu-system-x86 qemu-system-arm busybox-static \
	build-essential flex bison bc libelf-dev libssl-dev cpio ccache xz-utils perl git \
	gcc-aarch64-linux-gnu libc6-dev-arm64-cross gcc-i686-linux-gnu libc6-dev-i386-cross \
	clang lld llvm gdb-multiarch \
	dropbear-bin python3-pip python3-venv >/dev/null
BUSYBOX_DIR=/usr/local/lib/harness
$SUDO mkdir -p "$BUSYBOX_DIR"
for arch in arm64 i386; do
	[ -x "$BUSYBOX_DIR/busybox-$arch" ] && continue
	tmp=$(mktemp -d)
	(cd "$tmp" && apt-get download -qq "busybox-static:$arch" 2>/dev/null &&
		dpkg-deb -x busybox-static_*_"$arch".deb root)
	$SUDO install -m 0755 "$tmp/root/bin/busybox" "$BUSYBOX_DIR/busybox-$arch"
	rm -rf "$tmp"
done
python3 -m pip install -q -e '.[test]' tox
