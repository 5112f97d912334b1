#!/bin/sh
# Everything `harness` needs on a Debian/Ubuntu x86_64 host: the kernel
# source, QEMU, the guest userland, kernel build tools, and the Python package.
set -eu
cd "$(dirname "$0")"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
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
# The other targets' guest userland: Debian's busybox-static for arm64 and
# i386, fetched and unpacked (installing it would replace the host's
# /bin/busybox). Their package lists are needed only for that, so the
# architectures are added for the download and removed again. Best effort:
# without them only arm64/i386 guests are missing (builds are not), e.g. on
# Ubuntu, whose main mirror has no arm64 packages (ports.ubuntu.com does).
BUSYBOX_DIR=/usr/local/lib/harness
if [ ! -x "$BUSYBOX_DIR/busybox-arm64" ] || [ ! -x "$BUSYBOX_DIR/busybox-i386" ]; then
	$SUDO mkdir -p "$BUSYBOX_DIR"
	added=""
	for arch in arm64 i386; do
		dpkg --print-foreign-architectures | grep -qx "$arch" && continue
		$SUDO dpkg --add-architecture "$arch" && added="$added $arch"
	done
	if $SUDO apt-get update -qq >/dev/null 2>&1; then
		for arch in arm64 i386; do
			[ -x "$BUSYBOX_DIR/busybox-$arch" ] && continue
			tmp=$(mktemp -d)
			if (cd "$tmp" && apt-get download -qq "busybox-static:$arch" 2>/dev/null &&
				dpkg-deb -x busybox-static_*_"$arch".deb root); then
				$SUDO install -m 0755 "$tmp/root/bin/busybox" "$BUSYBOX_DIR/busybox-$arch"
			else
				echo "install-deps.sh: no busybox-static:$arch: no $arch guests" >&2
			fi
			rm -rf "$tmp"
		done
	else
		echo "install-deps.sh: no arm64/i386 package lists: no arm64/i386 guests" >&2
	fi
	for arch in $added; do
		$SUDO dpkg --remove-architecture "$arch"
	done
	[ -z "$added" ] || $SUDO apt-get update -qq >/dev/null 2>&1 || true
fi
python3 -m pip install -q -e '.[test]' tox
