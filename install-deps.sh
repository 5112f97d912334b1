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
$SUDO apt-get install -y -qq --no-install-recommends \
	linux-source-6.12 qemu-system-x86 busybox-static \
	build-essential flex bison bc libelf-dev libssl-dev cpio ccache xz-utils perl git \
	dropbear-bin python3-pip python3-venv >/dev/null
python3 -m pip install -q -e '.[test]' tox
