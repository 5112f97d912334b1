"""Per-boot keys: an Ed25519 client key (paramiko, ssh(1)) and a dropbear host key."""

import base64
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from harness.errors import ConfigError, HarnessError
from harness.ssh.net import LOOPBACK

DROPBEAR = Path("/usr/sbin/dropbear")
DROPBEARKEY = Path("/usr/bin/dropbearkey")


def missing_dropbear() -> ConfigError:
    return ConfigError("the SSH transport needs dropbear on the host (copied into the "
                       "guest): sudo apt-get install --no-install-recommends dropbear-bin")


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
        raise missing_dropbear()
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
