"""`harness boot --ssh` boots interactively and also starts dropbear;
`harness ssh [COMMAND...]` then connects to that guest from another terminal."""

import json
import os
import select
import shlex
import shutil
import sys
from dataclasses import replace
from pathlib import Path

from harness import printer, run
from harness.errors import EXIT_OK, ConfigError
from harness.profile import cache_dir
from harness.results import RunRecord
from harness.ssh.client import Guest
from harness.ssh.initrd import build_initrd
from harness.ssh.keys import Keys, make_keys
from harness.ssh.net import LOOPBACK, free_port, patch_command


def _state_root() -> Path:
    return cache_dir() / "ssh"


def _alive(state: dict) -> bool:
    try:
        cmdline = Path(f"/proc/{state['pid']}/cmdline").read_bytes()
    except (OSError, KeyError):
        return False
    return b"qemu-system" in cmdline and state["name"].encode() in cmdline


def _states() -> list[tuple[Path, dict]]:
    out = []
    for f in sorted(_state_root().glob("*/state.json")):
        try:
            out.append((f.parent, json.loads(f.read_text())))
        except (OSError, ValueError):
            continue
    return out


def boot_interactive(req: run.Request) -> int:
    """`harness boot --ssh`: the console shell, plus dropbear for `harness ssh`."""
    img = run.last_image(req)
    rec = RunRecord(req.results_root, f"boot-{req.kernel}")
    rootfs = run.prepare_rootfs(req, img, rec)
    for d, state in _states():  # guests that are gone
        if not _alive(state):
            shutil.rmtree(d, ignore_errors=True)
    work = _state_root() / rec.dir.name
    keys = make_keys(work)
    initrd = build_initrd(Path(img.info["tree"]), rootfs / "initramfs.cpio", keys, work)
    port = free_port()
    name = f"harness:{rec.dir.name}"
    prof = req.profile
    req = replace(req, profile=replace(prof, qemu=replace(
        prof.qemu, cmdline=[*prof.qemu.cmdline, "harness.ssh=1"])))
    cmds, accels, why = run.qemu_commands(req, img, rootfs, [], name=name)
    # No KVM probe in an interactive session (as cmd_boot): first choice.
    accel = accels[0]
    cmd = patch_command(cmds[accel], initrd, port)
    (work / "known_hosts").write_text(keys.known_hosts_line(port) + "\n")
    # exec keeps our pid: it is QEMU's.
    state = {"pid": os.getpid(), "name": name, "port": port, "key": str(keys.client),
             "host_key": keys.host_pub, "results": str(rec.dir)}
    (work / "state.json").write_text(json.dumps(state, indent=2))
    rec.meta(image=img.info, qemu={accel: cmd}, transport="ssh", ssh=state)
    printer.stage(f"Booting {img.info['release']} ({req.kernel}) interactively with {accel} "
                  f"({why}); Ctrl-A x quits QEMU; `harness ssh` connects "
                  f"({LOOPBACK}:{port})")
    os.execvp(cmd[0], cmd)
    return EXIT_OK


def _running() -> tuple[Path, dict]:
    live = [(d, s) for d, s in _states() if _alive(s)]
    if not live:
        raise ConfigError("no guest started by `harness boot --ssh` is running; start one "
                          "(in another terminal) with `harness boot --ssh`")
    return live[-1]  # the newest


def _keys_of(d: Path, state: dict) -> Keys:
    return Keys(Path(state["key"]), "", d / "dropbear_ed25519_host_key", state["host_key"])


def ssh_argv(d: Path, state: dict, command: list[str]) -> list[str]:
    """The system ssh client's command line: our key, the pinned host key only."""
    return ["ssh", "-i", state["key"], "-p", str(state["port"]),
            "-o", "IdentitiesOnly=yes", "-o", f"UserKnownHostsFile={d / 'known_hosts'}",
            "-o", "StrictHostKeyChecking=yes", "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR", f"root@{LOOPBACK}",
            # One word: ssh(1) would join the arguments with spaces unquoted.
            *([shlex.join(command)] if command else [])]


def _interactive_shell(guest: Guest) -> int:
    """paramiko's invoke_shell with the local tty in raw mode (no ssh(1) installed)."""
    import termios
    import tty

    assert guest.client is not None
    size = shutil.get_terminal_size()
    chan = guest.client.invoke_shell(term=os.environ.get("TERM", "vt100"),
                                     width=size.columns, height=size.lines)
    fd = sys.stdin.fileno()
    old = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)
        while True:
            ready, _, _ = select.select([chan, fd], [], [])
            if chan in ready:
                data = chan.recv(65536)
                if not data:
                    break
                os.write(sys.stdout.fileno(), data)
            if fd in ready:
                data = os.read(fd, 1024)
                if not data:
                    break
                chan.sendall(data)
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, old)
    return chan.recv_exit_status() if chan.exit_status_ready() else 0


def cmd_ssh(command: list[str], use_paramiko: bool = False) -> int:
    """`harness ssh [COMMAND...]`: a shell (or COMMAND) in the running guest."""
    d, state = _running()
    if command and command[0] == "--":
        command = command[1:]
    if not use_paramiko and shutil.which("ssh"):
        os.execvp("ssh", ssh_argv(d, state, command))
    guest = Guest(state["port"], _keys_of(d, state))
    guest.connect()
    try:
        if not command:
            if not sys.stdin.isatty():
                raise ConfigError("an interactive shell needs a terminal; give a command")
            return _interactive_shell(guest)
        res = guest.run(shlex.join(command),
                        on_data=lambda b: (sys.stdout.buffer.write(b), sys.stdout.flush()),
                        on_stderr=lambda b: (sys.stderr.buffer.write(b), sys.stderr.flush()))
        if res.code is None:
            printer.error(f"SSH: {res.error}")
            return 255
        return res.code
    finally:
        guest.close()
