# Sourced by the guest init (guest_init.sh) when the kernel command line has
# harness.ssh=1. It comes in the per-run SSH cpio (harness/ssh/initrd.py), appended
# to the cached initramfs, together with dropbear, its libraries, the host
# key and root's authorized_keys.
#
# Test mode: bring up QEMU user networking and dropbear, print the ready
# marker, then only print a heartbeat; the host runs the tests over SSH and
# ends the VM with `reboot -f`. Shell mode (harness.shell=1): the same in the
# background, then back to the init's console shell.
hb=40
for arg in $(cat /proc/cmdline); do
	case "$arg" in
	harness.ssh_heartbeat=*) hb="${arg#harness.ssh_heartbeat=}" ;;
	esac
done

ssh_fail() {
	echo "harness: ssh setup failed: $*"
	cat /tmp/dropbear.log 2>/dev/null
	if [ "$shell" != 1 ]; then
		sync
		reboot -f
	fi
}

ssh_setup() {
	# Interactive SSH sessions need ptys.
	mkdir -p /dev/pts
	mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts 2>/dev/null
	# QEMU user networking defaults: guest 10.0.2.15, gateway 10.0.2.2.
	# lo is the init's business, as in a console run (test results depend
	# on it); dropbear does not need it.
	ip link set eth0 up || { ssh_fail "no eth0 (virtio-net)"; return 1; }
	ip addr add 10.0.2.15/24 dev eth0
	ip route add default via 10.0.2.2
	chmod 700 /root /root/.ssh
	chmod 600 /root/.ssh/authorized_keys /etc/dropbear/*
	# -s: keys only; -j -k: no port forwarding; -E: log to stderr (a file).
	/usr/sbin/dropbear -F -E -s -j -k -r /etc/dropbear/dropbear_ed25519_host_key \
		-p 10.0.2.15:22 >/tmp/dropbear.log 2>&1 &
	pid=$!
	# The marker must mean "connect now": wait for the listening socket
	# (10.0.2.15:22 in /proc/net/tcp; state 0A = LISTEN).
	i=0
	until grep -q '0F02000A:0016 00000000:0000 0A' /proc/net/tcp; do
		i=$((i + 1))
		if ! kill -0 $pid 2>/dev/null; then
			ssh_fail "dropbear exited"
			return 1
		fi
		if [ $i -gt 300 ]; then
			ssh_fail "dropbear is not listening after 30s"
			return 1
		fi
		sleep 0.1
	done
	return 0
}

if ssh_setup && [ "$shell" != 1 ]; then
	echo "harness: ssh ready"
	# Keeps the host's console-silence clock honest: this stops when the
	# guest hangs, but not because the tests print over SSH instead.
	while :; do
		sleep "$hb"
		echo "harness: ssh guest alive"
	done
fi
