"""A paramiko connection to the guest's dropbear, host key pinned."""

import shlex
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import paramiko

from harness.errors import HarnessError
from harness.ssh.keys import Keys
from harness.ssh.net import LOOPBACK

CONNECT_SECONDS = 60  # ready marker -> authenticated session
FETCH_MAX_BYTES = 4 << 20


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
