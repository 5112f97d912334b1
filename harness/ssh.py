"""SSH transport: run the guest tests over SSH instead of on the serial console.

The guest gets QEMU user networking with one host forward, bound to 127.0.0.1
only (`restrict=on`: the guest cannot reach anything), and dropbear. The
cached initramfs is left alone: a small per-run cpio with dropbear, its
shared libraries, a fresh host key, root's authorized_keys and
guest_ssh.sh is appended to it (the kernel unpacks concatenated archives in
order). Both keys are made per run; the host key is pinned, so the client
never trusts an unknown server.

`harness test --transport ssh`: QEMU runs under boot.boot() as usual (same
timeouts, console log, splat detection, Ctrl-C handling); a worker thread
waits for the guest's ready marker in the live console log, runs each test
program over an exec channel, wraps the outputs into the KTAP document the
console init would have printed, and powers the guest off. The document is
appended to the console lines, so report.py parses and judges it unchanged.

`harness boot --ssh` boots interactively and also starts dropbear;
`harness ssh [COMMAND...]` then connects to that guest from another terminal.
"""

import base64
import json
import os
import re
import select
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from harness import printer, run
from harness.boot import GUEST_DONE, GUEST_START
from harness.errors import EXIT_OK, ConfigError, HarnessError
from harness.profile import cache_dir
from harness.results import RunRecord
from harness.rootfs import gen_init_cpio_tool

LOOPBACK = "127.0.0.1"  # the only host address the forward may ever use
GUEST_PORT = 22
READY = "harness: ssh ready"
SETUP_FAILED = "harness: ssh setup failed"
GUEST_SCRIPT = Path(__file__).with_name("guest_ssh.sh")
DROPBEAR = Path("/usr/sbin/dropbear")
DROPBEARKEY = Path("/usr/bin/dropbearkey")
HOST_KEY_GUEST = "/etc/dropbear/dropbear_ed25519_host_key"
SCRATCH = "/mnt/scratch"
# Guest files copied back after each test: logs, not the tests' data files.
FETCH_GLOB = "*.log"
FETCH_MAX_BYTES = 4 << 20
CONNECT_SECONDS = 60  # ready marker -> authenticated session
GUARD_SECONDS = 60  # host-side slack over the guest's own per-test timeout
POWEROFF_SECONDS = 30


def _missing_dropbear() -> ConfigError:
    return ConfigError("the SSH transport needs dropbear on the host (copied into the "
                       "guest): sudo apt-get install --no-install-recommends dropbear-bin")


# --- QEMU -------------------------------------------------------------------


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (a small race with QEMU binding it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def netdev_args(port: int) -> list[str]:
    # restrict=on: no packets from the guest leave QEMU; only the explicit
    # forward from 127.0.0.1:port on the host comes in.
    return ["-netdev", f"user,id=n0,restrict=on,hostfwd=tcp:{LOOPBACK}:{port}-:{GUEST_PORT}",
            "-device", "virtio-net-pci,netdev=n0"]


def patch_command(cmd: list[str], initrd: Path, port: int,
                  monitor: Path | None = None) -> list[str]:
    """The console command line, with our initrd, the network and a monitor."""
    out = list(cmd)
    out[out.index("-initrd") + 1] = str(initrd)
    extra = netdev_args(port)
    if monitor is not None:
        # A Unix socket, not TCP: lets the worker end a guest SSH cannot reach.
        extra += ["-monitor", f"unix:{monitor},server=on,wait=off"]
    return [*out, *extra]


def monitor_quit(sock: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(str(sock))
            s.sendall(b"quit\n")
            s.recv(4096)
        return True
    except OSError:
        return False


# --- keys -------------------------------------------------------------------


@dataclass
class Keys:
    client: Path  # private, OpenSSH format: paramiko and ssh(1) both read it
    client_pub: str  # one authorized_keys line
    host: Path  # dropbear format, goes into the guest
    host_pub: str  # "ssh-ed25519 AAAA...", pinned by the client

    def host_key(self) -> paramiko.PKey:
        kind, blob = self.host_pub.split()[:2]
        return paramiko.PKey.from_type_string(kind, base64.b64decode(blob))

    def known_hosts_line(self, port: int) -> str:
        kind, blob = self.host_pub.split()[:2]
        return f"[{LOOPBACK}]:{port} {kind} {blob}"


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def make_keys(directory: Path) -> Keys:
    """A fresh Ed25519 client key and dropbear host key in DIRECTORY."""
    if not DROPBEARKEY.exists():
        raise _missing_dropbear()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = Ed25519PrivateKey.generate()
    client = directory / "id_ed25519"
    _write_private(client, key.private_bytes(serialization.Encoding.PEM,
                                             serialization.PrivateFormat.OpenSSH,
                                             serialization.NoEncryption()))
    pub = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                        serialization.PublicFormat.OpenSSH).decode()
    (directory / "id_ed25519.pub").write_text(pub + " harness\n")
    host = directory / "dropbear_ed25519_host_key"
    host.unlink(missing_ok=True)
    proc = subprocess.run([str(DROPBEARKEY), "-t", "ed25519", "-f", str(host)],
                          capture_output=True, text=True, timeout=60)
    host_pub = next((ln.strip() for ln in proc.stdout.splitlines()
                     if ln.startswith("ssh-ed25519 ")), "")
    if proc.returncode != 0 or not host_pub:
        raise HarnessError(f"dropbearkey failed: {proc.stderr.strip() or proc.stdout.strip()}")
    host_pub = " ".join(host_pub.split()[:2])  # drop dropbearkey's user@host comment
    return Keys(client, pub + " harness", host, host_pub)


# --- the SSH cpio -----------------------------------------------------------

_LDD_PATH = re.compile(r"(?:=>\s*)?(/\S+)\s+\(0x[0-9a-f]+\)")


def parse_ldd(text: str) -> list[str]:
    """Absolute paths ldd resolved (libraries and the loader; not the vDSO)."""
    return [m.group(1) for ln in text.splitlines() if (m := _LDD_PATH.search(ln))]


def shared_libraries(binary: Path) -> list[str]:
    proc = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, timeout=60)
    if "not a dynamic executable" in proc.stdout + proc.stderr:
        return []
    if proc.returncode != 0:
        raise HarnessError(f"ldd {binary} failed: {proc.stderr.strip()}")
    return parse_ldd(proc.stdout)


def ssh_cpio_spec(keys: Keys, workdir: Path, libraries: list[str]) -> str:
    """gen_init_cpio spec of everything the SSH guest needs on top of the base."""
    (workdir / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (workdir / "group").write_text("root:x:0:\ntty:x:5:\n")
    (workdir / "shells").write_text("/bin/sh\n")
    (workdir / "authorized_keys").write_text(keys.client_pub + "\n")
    files = [("/usr/sbin/dropbear", DROPBEAR, 0o755),
             *((lib, Path(lib).resolve(), 0o755) for lib in libraries),
             ("/etc/passwd", workdir / "passwd", 0o644),
             ("/etc/group", workdir / "group", 0o644),
             ("/etc/shells", workdir / "shells", 0o644),
             ("/etc/harness/ssh.sh", GUEST_SCRIPT, 0o644),
             (HOST_KEY_GUEST, keys.host, 0o600),
             ("/root/.ssh/authorized_keys", workdir / "authorized_keys", 0o600)]
    # dropbear refuses keys in a group- or world-writable home or .ssh.
    modes = {"/root": 0o700, "/root/.ssh": 0o700}
    dirs: list[str] = []
    for guest, _, _ in files:
        for parent in reversed(Path(guest).parents):
            if str(parent) != "/" and str(parent) not in dirs:
                dirs.append(str(parent))
    lines = [f"dir {d} {modes.get(d, 0o755):o} 0 0" for d in dirs]
    lines += [f"file {guest} {host} {mode:o} 0 0" for guest, host, mode in files]
    return "\n".join(lines) + "\n"


def build_initrd(tree: Path, base_cpio: Path, keys: Keys, workdir: Path) -> Path:
    """The cached initramfs followed by this run's SSH cpio, as one file."""
    if not DROPBEAR.exists():
        raise _missing_dropbear()
    spec = workdir / "ssh-initramfs.list"
    spec.write_text(ssh_cpio_spec(keys, workdir, shared_libraries(DROPBEAR)))
    tool = gen_init_cpio_tool(tree, cache_dir())
    out = workdir / "initramfs-ssh.cpio"
    with open(out, "wb") as f:
        with open(base_cpio, "rb") as base:
            shutil.copyfileobj(base, f)
        f.flush()
        proc = subprocess.run([str(tool), "-t", "0", str(spec)], stdout=f,
                              stderr=subprocess.PIPE, timeout=300)
    if proc.returncode != 0:
        raise HarnessError(f"gen_init_cpio (SSH cpio) failed: "
                           f"{proc.stderr.decode(errors='replace')}")
    return out


# --- KTAP, as guest_init.sh prints it ------------------------------------------


def ktap_result(i: int, name: str, rc: int, per_test: int) -> str:
    if rc == 0:
        return f"ok {i} {name}"
    if rc == 4:
        return f"ok {i} {name} # SKIP"
    if rc == 137:
        return f"not ok {i} {name} # TIMEOUT after {per_test}s"
    return f"not ok {i} {name} # exit code {rc}"


def output_lines(data: bytes) -> list[str]:
    """Program output as the console shows it: lines, no CR, none for no output."""
    text = data.decode("utf-8", errors="replace")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln.rstrip("\r") for ln in lines]


def ktap_block(i: int, name: str, output: bytes, rc: int | None, per_test: int) -> list[str]:
    """One program's lines; no result line if the guest died while it ran."""
    block = [f"  # Subtest: {name}", *(f"  {ln}" for ln in output_lines(output))]
    if rc is not None:
        block.append(ktap_result(i, name, rc, per_test))
    return block


def ktap_header(n: int) -> list[str]:
    return [f"{GUEST_START}{n} guest test programs", "KTAP version 1", f"1..{n}"]


# --- the client ---------------------------------------------------------------


@dataclass
class Result:
    code: int | None  # None: no exit status (timed out, or the connection died)
    output: bytes  # stdout
    stderr: bytes = b""
    timed_out: bool = False
    error: str = ""


class Guest:
    """A paramiko connection to the guest's dropbear, host key pinned."""

    def __init__(self, port: int, keys: Keys) -> None:
        self.port = port
        self.keys = keys
        self.client: paramiko.SSHClient | None = None
        self.log: list[str] = []  # one entry per command: for ssh.log

    def connect(self, timeout: float = CONNECT_SECONDS,
                stop: threading.Event | None = None) -> float:
        """Retry until dropbear answers (slirp accepts before the guest does)."""
        pkey = paramiko.Ed25519Key.from_private_key_file(str(self.keys.client))
        t0 = time.monotonic()
        while True:
            client = paramiko.SSHClient()
            client.get_host_keys().add(f"[{LOOPBACK}]:{self.port}", self.keys.host_pub.split()[0],
                                       self.keys.host_key())
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
            try:
                client.connect(LOOPBACK, port=self.port, username="root", pkey=pkey,
                               timeout=10, banner_timeout=20, auth_timeout=20,
                               look_for_keys=False, allow_agent=False)
                self.client = client
                return time.monotonic() - t0
            except (paramiko.AuthenticationException, paramiko.BadHostKeyException):
                client.close()
                raise
            except (OSError, paramiko.SSHException, EOFError) as e:
                client.close()
                if time.monotonic() - t0 > timeout or (stop and stop.is_set()):
                    raise HarnessError(f"no SSH connection to {LOOPBACK}:{self.port} "
                                       f"in {timeout}s: {e}") from e
                time.sleep(1)

    def run(self, command: str, timeout: float | None = None,
            on_data: Callable[[bytes], None] | None = None,
            on_stderr: Callable[[bytes], None] | None = None) -> Result:
        """COMMAND's stdout (and, apart, stderr); never raises on a lost guest."""
        assert self.client is not None
        out, err = bytearray(), bytearray()
        t0 = time.monotonic()
        deadline = None if timeout is None else time.monotonic() + timeout

        def drain_stderr() -> None:
            while chan.recv_stderr_ready():
                data = chan.recv_stderr(65536)
                err.extend(data)
                if on_stderr:
                    on_stderr(data)

        def result(code: int | None, timed_out: bool = False, error: str = "") -> Result:
            res = Result(code, bytes(out), bytes(err), timed_out, error)
            self.log.append(f"$ {command}\n# exit {code}, {time.monotonic() - t0:.1f}s"
                            + (", timed out" if timed_out else "")
                            + (f", {error}" if error else "") + "\n"
                            + "".join(f"# stderr: {ln}\n" for ln in
                                      err.decode(errors="replace").splitlines()))
            return res

        try:
            transport = self.client.get_transport()
            assert transport is not None
            chan = transport.open_session(timeout=30)
            chan.exec_command(command)
            chan.settimeout(0.5)
            while True:
                drain_stderr()
                try:
                    data = chan.recv(65536)
                except TimeoutError:
                    if deadline is not None and time.monotonic() > deadline:
                        chan.close()
                        return result(None, timed_out=True)
                    if not transport.is_active():
                        return result(None, error="SSH connection lost")
                    continue
                if not data:
                    break
                out.extend(data)
                if on_data:
                    on_data(data)
            # EOF comes before the exit status; a dying guest sends neither,
            # and paramiko then says -1 (real statuses are 0..255).
            got = chan.status_event.wait(10)
            drain_stderr()
            if got and chan.recv_exit_status() >= 0:
                return result(chan.recv_exit_status())
            return result(None, error="no exit status (connection lost)")
        except (OSError, paramiko.SSHException, EOFError) as e:
            return result(None, error=str(e) or type(e).__name__)

    def check(self, command: str, timeout: float = 60) -> bytes:
        res = self.run(command, timeout)
        if res.code != 0:
            why = res.error or (res.stderr or res.output).decode(errors="replace").strip()
            raise HarnessError(f"guest command failed (exit {res.code}): {command}: {why}")
        return res.output

    def fetch(self, remote: str, local: Path, limit: int = FETCH_MAX_BYTES) -> int:
        """Copy one guest file with `cat` (dropbear-bin has no sftp-server)."""
        res = self.run(f"head -c {limit} {shlex.quote(remote)}", timeout=120)
        if res.code != 0:
            raise HarnessError(f"copying {remote} from the guest failed: "
                               f"{res.error or res.stderr.decode(errors='replace').strip()}")
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(res.output)
        return len(res.output)

    def poweroff(self) -> None:
        # The guest dies under the channel: no exit status to wait for.
        self.run("sync; reboot -f", timeout=5)

    def close(self) -> None:
        if self.client:
            self.client.close()


def console(text: str) -> str:
    """A guest command printing TEXT on the serial console, i.e. into console.log."""
    return f"echo {shlex.quote(text)} >/dev/console"


def test_command(name: str, per_test: int) -> str:
    d = shlex.quote(f"{SCRATCH}/{name}")
    # No exec: a program killed by a signal must become the shell's 128+N
    # status (137 = timeout), as on the console, not an SSH exit-signal. The
    # program's stderr joins its stdout, as on the console.
    return (f"mkdir -p {d} && cd {d} && "
            f"timeout -s KILL {per_test} {shlex.quote('/tests/' + name)} 2>&1; exit $?")


# --- harness test --transport ssh -------------------------------------------


@dataclass
class SshSession:
    """The worker thread's work and what it found."""

    port: int
    keys: Keys
    tests: list[str]
    per_test: int
    console_log: Path
    monitor: Path
    files_dir: Path
    echo: bool = False
    stop: threading.Event = field(default_factory=threading.Event)
    lines: list[str] = field(default_factory=list)  # KTAP, as the console init prints it
    completed: bool = False
    error: str = ""
    connect_seconds: float | None = None
    fetched: list[str] = field(default_factory=list)
    guest: Guest | None = None

    def wait_ready(self) -> bool:
        """Tail the live console log for the guest's ready marker."""
        pos = 0
        pending = ""
        while not self.stop.is_set():
            try:
                with open(self.console_log, errors="replace") as f:
                    f.seek(pos)
                    chunk = f.read()
                    pos = f.tell()
            except FileNotFoundError:
                chunk = ""
            pending += chunk
            *complete, pending = pending.split("\n")
            for line in complete:
                if READY in line:
                    return True
                if SETUP_FAILED in line:
                    self.error = line.strip()
                    return False
            time.sleep(0.2)
        return False

    def run(self) -> None:
        """The worker thread's body."""
        guest = self.guest = Guest(self.port, self.keys)
        try:
            if not self.wait_ready():
                return
            self.connect_seconds = guest.connect(stop=self.stop)
            if self.run_tests(guest):
                guest.poweroff()
        except Exception as e:  # reported by the main thread; never kill it silently
            self.error = self.error or f"{type(e).__name__}: {e}"
        finally:
            guest.close()
            # QEMU exits on `reboot -f`; if it does not (SSH broke, guest
            # wedged), quit it rather than wait for the run timeout.
            if not self.stop.wait(POWEROFF_SECONDS if self.completed else 2):
                monitor_quit(self.monitor)

    def run_tests(self, guest: Guest) -> bool:
        """Every test, as the console init runs them; False if the guest was lost."""
        guest.check(console(f"{GUEST_START}{len(self.tests)} guest test programs "
                            "(over ssh from the host)"))
        self.lines += ktap_header(len(self.tests))
        for i, name in enumerate(self.tests, 1):
            if not self._one(guest, i, name):
                return False
        self.lines.append(GUEST_DONE)
        # On the console too: boot.run_qemu then ends the run as "done".
        guest.check(console(GUEST_DONE) + "; sync")
        self.completed = True
        return True

    def _one(self, guest: Guest, i: int, name: str) -> bool:
        exists = guest.run(f"test -x {shlex.quote('/tests/' + name)}", timeout=60)
        if exists.code is None:
            self.error = f"guest lost before {name}: {exists.error}"
            return False
        if exists.code != 0:
            self.lines.append(f"not ok {i} {name} # ERROR no such guest test program")
            return True
        guest.run(console(f"harness: ssh: running {name}"), timeout=60)
        # Subtest line and output land in self.lines as they arrive, so a
        # guest that dies mid-test still leaves its partial output behind.
        self.lines.append(f"  # Subtest: {name}")
        pending = bytearray()

        def on_data(data: bytes) -> None:
            pending.extend(data)
            cut = pending.rfind(b"\n") + 1
            if cut:
                new = [f"  {ln}" for ln in output_lines(bytes(pending[:cut]))]
                del pending[:cut]
                self.lines.extend(new)
                if self.echo:
                    print("\n".join(new), flush=True)

        res = guest.run(test_command(name, self.per_test), self.per_test + GUARD_SECONDS,
                        on_data)
        self.lines.extend(f"  {ln}" for ln in output_lines(bytes(pending)))
        if res.timed_out:
            # The guest's own timeout should have fired; the guest is unwell.
            self.lines.append(f"not ok {i} {name} # TIMEOUT after {self.per_test}s "
                              "(host-side SSH guard)")
            self.error = f"{name}: no answer over SSH {GUARD_SECONDS}s past its timeout"
            return False
        if res.code is None:
            self.error = f"guest lost while running {name}: {res.error}"
            return False
        self.lines.append(ktap_result(i, name, res.code, self.per_test))
        self._fetch_logs(guest, name)
        return True

    def _fetch_logs(self, guest: Guest, name: str) -> None:
        d = f"{SCRATCH}/{name}"
        res = guest.run(f"find {shlex.quote(d)} -type f -name {shlex.quote(FETCH_GLOB)}",
                        timeout=60)
        if res.code != 0:
            return
        for remote in res.output.decode(errors="replace").splitlines():
            rel = os.path.relpath(remote, d)
            if rel.startswith(".."):
                continue
            try:
                guest.fetch(remote, self.files_dir / name / rel)
            except HarnessError as e:  # a missing log is no reason to stop testing
                printer.warn(str(e))
                continue
            self.fetched.append(f"{name}/{rel}")


def heartbeat_seconds(silence: int) -> int:
    """Guest heartbeat period: well inside the console-silence timeout."""
    return max(1, silence // 3)


# --- harness boot --ssh / harness ssh -------------------------------------------


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
