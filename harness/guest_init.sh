#!/bin/busybox sh
# PID 1 of the test guest. Mounts what the guest tests need, runs the
# programs named by harness.tests= each under its own timeout, prints one
# KTAP document on the console and ends the VM (QEMU runs with -no-reboot).
/bin/busybox --install -s /bin
export PATH=/bin HOME=/root
mkdir -p /proc /sys /dev /tmp /root /mnt/scratch
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /tmp
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
echo +memory > /sys/fs/cgroup/cgroup.subtree_control
# Loopback for tests that talk TCP to themselves (test_memcg_sock).
ip link set lo up 2>/dev/null
mkdir -p /etc
echo "127.0.0.1 localhost" > /etc/hosts
tests=""
per_test=300
shell=0
ssh=0
disk=/dev/ram0
for arg in $(cat /proc/cmdline); do
	case "$arg" in
	harness.tests=*) tests=$(echo "${arg#harness.tests=}" | tr ',' ' ') ;;
	harness.per_test=*) per_test="${arg#harness.per_test=}" ;;
	harness.shell=1) shell=1 ;;
	harness.ssh=1) ssh=1 ;;
	harness.disk=*) disk="${arg#harness.disk=}" ;;
	esac
done

# ext2 on a block device: clean page cache that reclaim can drop (tmpfs
# can't). The profile's virtio disk (qemu.scratch_disk: real block I/O)
# when harness.disk= names it, else the brd ramdisk /dev/ram0.
# Each program runs in /mnt/scratch/<name>; file_charge's
# open_reclaims_page_cache and test_memcontrol's page cache tests need it
# there. Without it they fail (or skip, when the kernel has no brd), and
# this line says why; tmpfs keeps the other tests' cwd writable.
if [ ! -b $disk ]; then
	echo "harness: /mnt/scratch: ERROR no $disk (CONFIG_BLK_DEV_RAM or CONFIG_VIRTIO_BLK off?): tmpfs instead, no reclaimable page cache"
	mount -t tmpfs tmpfs /mnt/scratch
elif ! err=$(mke2fs -q $disk 2>&1 >/dev/null); then
	echo "harness: /mnt/scratch: ERROR mke2fs $disk failed ($err): tmpfs instead, no reclaimable page cache"
	mount -t tmpfs tmpfs /mnt/scratch
elif ! err=$(mount -t ext2 $disk /mnt/scratch 2>&1); then
	echo "harness: /mnt/scratch: ERROR $err: tmpfs instead, no reclaimable page cache"
	mount -t tmpfs tmpfs /mnt/scratch
else
	echo "harness: /mnt/scratch: ext2 on $disk"
fi
# Swap, where the kernel has zram (the distro profile): reclaim at a memcg
# limit may then swap anon out rather than OOM-kill, as on a machine with
# swap, and upstream's swap tests (memory.swap.*) run instead of skipping.
# The default profile has no zram, so no swap device (as on a cloud VM):
# its tests declare what a machine without swap does.
if [ -e /sys/block/zram0/disksize ]; then
	if echo 512M > /sys/block/zram0/disksize && mkswap /dev/zram0 >/dev/null 2>&1 &&
		swapon /dev/zram0 2>/dev/null; then
		echo "harness: swap: 512M zram ($(cat /sys/block/zram0/comp_algorithm | sed 's/.*\[\(.*\)\].*/\1/'))"
	else
		echo "harness: swap: ERROR setting up zram0 failed: no swap"
	fi
fi

# SSH transport (harness/ssh.py): networking + dropbear from the per-run
# cpio; in test mode this does not return, the host runs the tests.
if [ "$ssh" = 1 ]; then
	if [ -r /etc/harness/ssh.sh ]; then
		. /etc/harness/ssh.sh
	else
		echo "harness: ssh setup failed: no /etc/harness/ssh.sh (SSH cpio missing)"
	fi
fi

if [ "$shell" = 1 ]; then
	echo "harness: interactive shell; tests are in /tests; 'exit' ends the VM"
	setsid cttyhack sh -l
	reboot -f
fi

set -o pipefail
n=0
for t in $tests; do n=$((n + 1)); done
echo "harness: running $n guest test programs"
echo "KTAP version 1"
echo "1..$n"
i=0
for spec in $tests; do
	i=$((i + 1))
	# prog or prog:case:case (harness/selection.py): only those cases run,
	# selected by kselftest_harness.h's own -r FIXTURE[.VARIANT].TEST.
	t=${spec%%:*}
	args=""
	[ "$t" != "$spec" ] && args="-r $(echo "${spec#*:}" | sed 's/:/ -r /g')"
	dir=/mnt/scratch/$t
	mkdir -p "$dir"
	if [ ! -x "/tests/$t" ]; then
		echo "not ok $i $t # ERROR no such guest test program"
		continue
	fi
	# Names the block even if the program dies before its result line.
	echo "  # Subtest: $t"
	# Not sed: it reads a line ahead (to know which is last), so a crash
	# would swallow the last line a test printed.
	start=$(date +%s)
	# $args unquoted: split into words; case names hold no glob characters.
	(cd "$dir" && timeout -s KILL "$per_test" "/tests/$t" $args 2>&1) |
		while IFS= read -r line; do echo "  $line"; done
	rc=$?
	echo "  # harness: $t ran for $(($(date +%s) - start))s"
	case $rc in
	0) echo "ok $i $t" ;;
	4) echo "ok $i $t # SKIP" ;;
	137) echo "not ok $i $t # TIMEOUT after ${per_test}s" ;;
	*) echo "not ok $i $t # exit code $rc" ;;
	esac
done
# A kmemleak kernel (the debug profile): scan now rather than hope the
# 10-minute auto-scan ran; suspected leaks reach the console as a splat.
# Two passes: kmemleak does not report an object whose contents changed
# since the previous scan, so a first scan alone would excuse recent leaks.
if [ -w /sys/kernel/debug/kmemleak ]; then
	echo "harness: kmemleak scan"
	echo scan > /sys/kernel/debug/kmemleak
	echo scan > /sys/kernel/debug/kmemleak
fi
echo "harness: guest tests done"
sync
reboot -f
