"""QEMU's side of SSH: a loopback-only port forward, and a monitor to end the VM."""

import socket
from pathlib import Path

LOOPBACK = "127.0.0.1"  # the only host address the forward may ever use
GUEST_PORT = 22


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


def heartbeat_seconds(silence: int) -> int:
    """Guest heartbeat period: well inside the console-silence timeout."""
    return max(1, silence // 3)
