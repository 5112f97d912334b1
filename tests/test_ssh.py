"""SSH transport, without a guest: QEMU arguments, keys, the cpio, KTAP wrapping."""

import os
import re
import socket
import stat
import threading
import time
from pathlib import Path

import paramiko
import pytest

from harness import cli, ktap
from harness import judge as judging
from harness.boot import GUEST_DONE, GUEST_START
from harness.ktap import Status
from harness.profile import QemuConfig
from harness.qemu import kernel_cmdline, qemu_command
from harness.ssh import client, initrd, interactive, net, session
from harness.ssh import keys as sshkeys
from harness.target import X86_64

needs_dropbear = pytest.mark.skipif(
    not sshkeys.DROPBEARKEY.exists() or not sshkeys.DROPBEAR.exists(),
    reason="dropbear-bin not installed")


def _console_cmd() -> list[str]:
    line = kernel_cmdline(X86_64.qemu, ["smoke"], 60, ["harness.ssh=1"])
    return qemu_command(X86_64.qemu, QemuConfig(extra_args=["-s"]), "tcg", Path("/k/bzImage"),
                        Path("/rootfs/initramfs.cpio"), line)


# --- QEMU -------------------------------------------------------------------


def test_netdev_forwards_from_loopback_only():
    args = net.netdev_args(40022)
    netdev = args[args.index("-netdev") + 1]
    assert netdev.split(",") == ["user", "id=n0", "restrict=on",
                                 "hostfwd=tcp:127.0.0.1:40022-:22"]
    assert args[args.index("-device") + 1] == "virtio-net-pci,netdev=n0"


def test_patched_command_uses_no_host_address_but_loopback(tmp_path):
    cmd = net.patch_command(_console_cmd(), tmp_path / "i.cpio", 40022, tmp_path / "mon.sock")
    joined = " ".join(cmd)
    assert set(re.findall(r"\b\d{1,3}(?:\.\d{1,3}){3}\b", joined)) == {"127.0.0.1"}
    assert "0.0.0.0" not in joined and "hostfwd=tcp::" not in joined
    # Host forwards only through -netdev: no -nic / -net shortcuts, no TCP monitor.
    assert "-nic" not in cmd and "-net" not in cmd
    assert cmd[cmd.index("-monitor") + 1] == f"unix:{tmp_path / 'mon.sock'},server=on,wait=off"


def test_patched_command_keeps_the_console_command(tmp_path):
    base = _console_cmd()
    cmd = net.patch_command(base, tmp_path / "i.cpio", 40022)
    assert cmd[cmd.index("-initrd") + 1] == str(tmp_path / "i.cpio")
    assert base[base.index("-initrd") + 1] == "/rootfs/initramfs.cpio"  # not mutated
    assert cmd[:len(base)][cmd.index("-initrd") + 2:] == base[base.index("-initrd") + 2:]
    assert "-nodefaults" in cmd and cmd[cmd.index("-serial") + 1] == "stdio"
    assert "-monitor" not in cmd


def test_free_port_is_bindable_on_loopback():
    port = net.free_port()
    assert 1024 <= port < 65536
    with socket.socket() as s:
        s.bind((net.LOOPBACK, port))


def test_heartbeat_stays_inside_the_silence_timeout():
    assert net.heartbeat_seconds(120) == 40
    assert net.heartbeat_seconds(10) == 3
    assert net.heartbeat_seconds(1) == 1


def test_monitor_quit_sends_quit(tmp_path):
    path = tmp_path / "m.sock"
    got: list[bytes] = []
    with socket.socket(socket.AF_UNIX) as srv:
        srv.bind(str(path))
        srv.listen(1)

        def serve() -> None:
            conn, _ = srv.accept()
            with conn:
                got.append(conn.recv(100))
                conn.sendall(b"bye")

        t = threading.Thread(target=serve)
        t.start()
        assert net.monitor_quit(path)
        t.join(5)
    assert got == [b"quit\n"]
    assert not net.monitor_quit(tmp_path / "absent.sock")


# --- keys -------------------------------------------------------------------


@needs_dropbear
def test_keys_are_fresh_private_and_loadable(tmp_path):
    a = sshkeys.make_keys(tmp_path / "a")
    b = sshkeys.make_keys(tmp_path / "b")
    assert a.client_pub != b.client_pub and a.host_pub != b.host_pub
    for path in (a.client, a.host):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert a.client_pub.startswith("ssh-ed25519 ") and a.client_pub.endswith(" harness")
    loaded = paramiko.Ed25519Key.from_private_key_file(str(a.client))
    assert a.client_pub.split()[1] == loaded.get_base64()
    assert a.host_pub.split()[0] == "ssh-ed25519" and len(a.host_pub.split()) == 2
    assert a.host_key().get_base64() == a.host_pub.split()[1]
    assert a.known_hosts_line(40022) == f"[127.0.0.1]:40022 {a.host_pub}"


def test_ssh_argv_pins_the_host_key(tmp_path):
    state = {"key": "/k/id", "port": 40022}
    argv = interactive.ssh_argv(tmp_path, state, ["uname", "-a"])
    assert argv[0] == "ssh" and argv[-2:] == ["root@127.0.0.1", "uname -a"]
    assert interactive.ssh_argv(tmp_path, state, ["sh", "-c", "exit 7"])[-1] == "sh -c 'exit 7'"
    assert interactive.ssh_argv(tmp_path, state, [])[-1] == "root@127.0.0.1"
    assert "StrictHostKeyChecking=yes" in argv
    assert f"UserKnownHostsFile={tmp_path / 'known_hosts'}" in argv
    assert argv[argv.index("-p") + 1] == "40022" and argv[argv.index("-i") + 1] == "/k/id"


# --- the SSH cpio -----------------------------------------------------------

LDD = """\
\tlinux-vdso.so.1 (0x00007ffd6b5f1000)
\tlibz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x00007f3afec10000)
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f3afe9f2000)
\t/lib64/ld-linux-x86-64.so.2 (0x00007f3afed6e000)
"""


def test_parse_ldd_keeps_libraries_and_loader_not_vdso():
    assert initrd.parse_ldd(LDD) == ["/lib/x86_64-linux-gnu/libz.so.1",
                                  "/lib/x86_64-linux-gnu/libc.so.6",
                                  "/lib64/ld-linux-x86-64.so.2"]


def test_cpio_spec_has_dropbear_keys_and_strict_modes(tmp_path):
    keys = sshkeys.Keys(tmp_path / "id", "ssh-ed25519 AAAAclient harness", tmp_path / "hk",
                    "ssh-ed25519 AAAAhost")
    spec = initrd.ssh_cpio_spec(keys, tmp_path, ["/lib/x86_64-linux-gnu/libc.so.6",
                                              "/lib64/ld-linux-x86-64.so.2"]).splitlines()
    files = {ln.split()[1]: ln.split() for ln in spec if ln.startswith("file ")}
    dirs = [ln.split()[1] for ln in spec if ln.startswith("dir ")]
    assert files["/usr/sbin/dropbear"][2] == str(sshkeys.DROPBEAR)
    assert "/lib64/ld-linux-x86-64.so.2" in files and "/lib/x86_64-linux-gnu/libc.so.6" in files
    assert files["/root/.ssh/authorized_keys"][3] == "600"
    assert files[initrd.HOST_KEY_GUEST][2:4] == [str(tmp_path / "hk"), "600"]
    assert files["/etc/harness/ssh.sh"][2] == str(initrd.GUEST_SCRIPT)
    assert (tmp_path / "authorized_keys").read_text() == "ssh-ed25519 AAAAclient harness\n"
    assert (tmp_path / "passwd").read_text().startswith("root:x:0:0:root:/root:/bin/sh")
    assert "dir /root 700 0 0" in spec and "dir /root/.ssh 700 0 0" in spec
    # Every parent directory once, before anything inside it.
    assert len(dirs) == len(set(dirs)) and dirs.index("/root") < dirs.index("/root/.ssh")
    for f in files:
        assert str(Path(f).parent) in dirs


@needs_dropbear
def test_initrd_is_the_base_followed_by_the_ssh_cpio(tmp_path, monkeypatch):
    # A stand-in for the kernel's gen_init_cpio: echoes its spec.
    tool = tmp_path / "gen_init_cpio"
    tool.write_text("#!/bin/sh\ncat \"$3\"\n")
    tool.chmod(0o755)
    monkeypatch.setattr(initrd, "gen_init_cpio_tool", lambda tree, cache: tool)
    base = tmp_path / "base.cpio"
    base.write_bytes(b"BASE" * 100)
    keys = sshkeys.make_keys(tmp_path / "k")
    out = initrd.build_initrd(tmp_path, base, keys, tmp_path / "k")
    data = out.read_bytes()
    assert data.startswith(b"BASE" * 100)
    assert b"file /usr/sbin/dropbear " in data and b"/lib64/ld-linux-x86-64.so.2" in data


def test_guest_init_sources_the_ssh_script_only_on_request():
    init = initrd.GUEST_SCRIPT.with_name("guest_init.sh").read_text()
    assert "harness.ssh=1) ssh=1" in init and ". /etc/harness/ssh.sh" in init
    script = initrd.GUEST_SCRIPT.read_text()
    assert session.READY in script and session.SETUP_FAILED in script
    assert "10.0.2.15:22" in script  # dropbear listens on the user-net address only


# --- KTAP wrapping ------------------------------------------------------------


@pytest.mark.parametrize("rc, line", [
    (0, "ok 3 t"), (4, "ok 3 t # SKIP"), (137, "not ok 3 t # TIMEOUT after 60s"),
    (1, "not ok 3 t # exit code 1"), (139, "not ok 3 t # exit code 139"),
])
def test_result_lines_match_guest_init(rc, line):
    assert session.ktap_result(3, "t", rc, 60) == line


def test_output_lines_are_what_the_console_shows():
    assert session.output_lines(b"a\r\nb\n\nc") == ["a", "b", "", "c"]
    assert session.output_lines(b"") == []
    assert session.output_lines(b"\xffx\n") == ["\ufffdx"]


def test_block_without_exit_status_has_no_result_line():
    assert session.ktap_block(1, "t", b"TAP version 13\n1..1\n", None, 60) == [
        "  # Subtest: t", "  TAP version 13", "  1..1"]


PROGRAM_OK = b"TAP version 13\n1..2\nok 1 a.one\nok 2 a.two\n# Totals: pass:2\n"
PROGRAM_FAIL = b"TAP version 13\n1..1\nnot ok 1 b.one\n"


def test_wrapped_document_parses_like_the_console_one():
    lines = [*session.ktap_header(2), *session.ktap_block(1, "p", PROGRAM_OK, 0, 60),
             *session.ktap_block(2, "q", PROGRAM_FAIL, 1, 60), GUEST_DONE]
    # What guest_init.sh prints for the same two programs.
    console = [f"{GUEST_START}2 guest test programs", "KTAP version 1", "1..2",
               "  # Subtest: p", *("  " + ln for ln in PROGRAM_OK.decode().splitlines()),
               "ok 1 p", "  # Subtest: q",
               *("  " + ln for ln in PROGRAM_FAIL.decode().splitlines()),
               "not ok 2 q # exit code 1", GUEST_DONE]
    assert lines == console
    boot = ["[    0.000000] Linux version 6.12", "[    1.000000] Run /init as init process"]
    _, guest = judging.split_console(boot + lines)
    assert guest is not None
    statuses = {n: r.status for n, r in ktap.walk(ktap.parse(guest))}
    assert statuses == {"guest/p/a.one": Status.PASS, "guest/p/a.two": Status.PASS,
                        "guest/q/b.one": Status.FAIL}


def test_test_command_runs_in_scratch_under_the_guest_timeout():
    cmd = session.test_command("file_charge", 300)
    assert cmd.startswith("mkdir -p /mnt/scratch/file_charge && cd /mnt/scratch/file_charge")
    assert "timeout -s KILL 300 /tests/file_charge 2>&1" in cmd
    assert "exec" not in cmd  # the shell must turn SIGKILL into 137
    assert session.console("it's") == "echo 'it'\"'\"'s' >/dev/console"


# --- the worker, against a fake guest -----------------------------------------------


class FakeGuest:
    def __init__(self, programs: dict[str, tuple[bytes, int | None]]) -> None:
        self.programs = programs
        self.commands: list[str] = []

    def run(self, command, timeout=None, on_data=None, on_stderr=None):
        self.commands.append(command)
        if command.startswith("test -x /tests/"):
            return client.Result(0 if command.split("/tests/")[1] in self.programs else 1, b"")
        for name, (out, rc) in self.programs.items():
            if f"/tests/{name} " in command:
                if on_data:
                    for i in range(0, len(out), 7):  # arbitrary chunking
                        on_data(out[i:i + 7])
                return client.Result(rc, out, error="" if rc is not None else "lost")
        return client.Result(0, b"")

    def check(self, command, timeout=60):
        self.commands.append(command)
        return b""


def _session(tmp_path: Path, tests: list[str]) -> session.SshSession:
    keys = sshkeys.Keys(tmp_path / "id", "", tmp_path / "hk", "ssh-ed25519 AAAA")
    return session.SshSession(40022, keys, tests, 60, tmp_path / "console.log",
                          tmp_path / "mon.sock", tmp_path / "files")


def test_worker_wraps_each_program_like_the_console(tmp_path):
    s = _session(tmp_path, ["p", "q", "missing"])
    guest = FakeGuest({"p": (PROGRAM_OK, 0), "q": (PROGRAM_FAIL + b"no newline", 1)})
    assert s.run_tests(guest)  # type: ignore[arg-type]
    assert s.completed and s.lines[0] == f"{GUEST_START}3 guest test programs"
    assert "  no newline" in s.lines and "not ok 2 q # exit code 1" in s.lines
    assert "not ok 3 missing # ERROR no such guest test program" in s.lines
    assert s.lines[-1] == GUEST_DONE
    assert any(c.startswith("echo 'harness: guest tests done' >/dev/console") for c in
               guest.commands)


def test_worker_stops_at_a_lost_guest_leaving_partial_output(tmp_path):
    s = _session(tmp_path, ["p", "q"])
    guest = FakeGuest({"p": (b"TAP version 13\n1..1\n", None), "q": (PROGRAM_OK, 0)})
    assert not s.run_tests(guest)  # type: ignore[arg-type]
    assert not s.completed and "guest lost while running p" in s.error
    assert s.lines[-3:] == ["  # Subtest: p", "  TAP version 13", "  1..1"]
    assert not any("/tests/q " in c for c in guest.commands)


def test_wait_ready_tails_the_live_console_log(tmp_path):
    s = _session(tmp_path, ["p"])
    log = tmp_path / "console.log"

    def write() -> None:
        with open(log, "a") as f:
            f.write("[    1.0] booting\nharness: ssh re")
            f.flush()
            time.sleep(0.5)
            f.write("ady\n")

    t = threading.Thread(target=write)
    t.start()
    assert s.wait_ready()
    t.join()


def test_wait_ready_gives_up_on_setup_failure_or_stop(tmp_path):
    s = _session(tmp_path, ["p"])
    (tmp_path / "console.log").write_text("harness: ssh setup failed: dropbear exited\n")
    assert not s.wait_ready() and "dropbear exited" in s.error
    s = _session(tmp_path / "none", ["p"])
    s.stop.set()
    assert not s.wait_ready()


# --- command line ---------------------------------------------------------------


def test_cli_transport_defaults_to_the_console():
    p = cli.build_parser()
    assert p.parse_args(["test"]).transport == "console"
    assert p.parse_args(["build-and-test", "--transport", "ssh"]).transport == "ssh"
    assert p.parse_args(["boot", "--ssh"]).ssh is True
    args = p.parse_args(["ssh", "--", "ls", "-l"])
    assert args.func is cli.cmd_ssh and args.cmd in (["--", "ls", "-l"], ["ls", "-l"])
    with pytest.raises(SystemExit):
        p.parse_args(["test", "--transport", "telnet"])


def test_harness_ssh_without_a_running_guest_says_how_to_start_one(tmp_path, monkeypatch,
                                                                  capsys):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    assert cli.main(["ssh", "true"]) == 2
    assert "harness boot --ssh" in capsys.readouterr().err


def test_keys_directory_is_private(tmp_path):
    if not sshkeys.DROPBEARKEY.exists():
        pytest.skip("dropbear-bin not installed")
    sshkeys.make_keys(tmp_path / "k")
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o700
    assert os.access(tmp_path / "k" / "id_ed25519", os.R_OK)
