#!/bin/sh
# Everything `harness` needs on a Debian/Ubuntu x86_64 host: the kernel
# source, QEMU, the guest userland, kernel build tools (apt, with sudo unless
# root), and the Python package in a virtual environment in the checkout,
# .venv/, that ./harness.sh runs.
#
#   ./install-deps.sh                 everything
#   ./install-deps.sh --python-only   only .venv/ (no root, no apt)
set -eu
cd "$(dirname "$0")"

# The package (editable, with its test extras) and tox go into .venv/, never
# into the system Python: Debian 12+ and Ubuntu 23.04+ refuse that (PEP 668,
# EXTERNALLY-MANAGED), and nothing here needs root. The interpreter is
# /usr/bin/python3, not the first python3 on PATH (a pyenv or conda one may be
# any version and lack venv): it is the one the python3-venv package below
# gives `-m venv` (ensurepip). PYTHON=/path/to/python3 overrides.
python_env() {
	py=${PYTHON:-/usr/bin/python3}
	if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
		echo "install-deps.sh: $py is not a Python >= 3.11; set PYTHON=/path/to/python3" >&2
		exit 1
	fi
	ver='import sys; print(sys.version_info[:2])'
	# Remade when half made (no ensurepip), or made by another Python (a
	# distribution upgrade, another PYTHON).
	if ! .venv/bin/python -m pip --version >/dev/null 2>&1 ||
		[ "$(.venv/bin/python -c "$ver")" != "$("$py" -c "$ver")" ]; then
		rm -rf .venv
		if ! "$py" -m venv .venv; then
			rm -rf .venv
			echo "install-deps.sh: $py cannot make a venv: install python3-venv" >&2
			exit 1
		fi
	fi
	.venv/bin/python -m pip install -q -e '.[test]' tox
}

if [ "${1:-}" = --python-only ]; then
	python_env
	exit 0
fi
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
# Not fatal: one failing index (say, a mirror mid-sync) fails the whole update
# though the lists below may well be there; the install says what is missing.
$SUDO apt-get update -qq || echo "install-deps.sh: apt-get update failed (continuing)" >&2
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
	dropbear-bin python3-venv >/dev/null
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
	# `apt-get update` fails as a whole when any one index does (a mirror
	# mid-sync, a hash mismatch), which says nothing about the arm64/i386
	# lists: try each download and report what really failed.
	update_log=$(mktemp)
	$SUDO apt-get update -qq >"$update_log" 2>&1 || true
	for arch in arm64 i386; do
		[ -x "$BUSYBOX_DIR/busybox-$arch" ] && continue
		tmp=$(mktemp -d)
		if out=$(cd "$tmp" && apt-get download -qq "busybox-static:$arch" 2>&1 &&
			dpkg-deb -x busybox-static_*_"$arch".deb root 2>&1); then
			$SUDO install -m 0755 "$tmp/root/bin/busybox" "$BUSYBOX_DIR/busybox-$arch"
		else
			echo "install-deps.sh: no busybox-static:$arch, so no $arch guests:" >&2
			echo "$out" | grep -v '^W: Download is performed unsandboxed' | sed 's/^/    /' >&2
			grep "^[EW]:" "$update_log" | grep -v '^W: Download' | sed 's/^/    apt-get update: /' >&2 || true
		fi
		rm -rf "$tmp"
	done
	rm -f "$update_log"
	for arch in $added; do
		$SUDO dpkg --remove-architecture "$arch"
	done
	[ -z "$added" ] || $SUDO apt-get update -qq >/dev/null 2>&1 || true
fi
python_env
