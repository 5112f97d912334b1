"""`harness boot --gdb` without QEMU: the stub's arguments, the port, the gdb command."""

import shlex
import socket
from pathlib import Path

import pytest

from harness import cli, gdb, run
from harness.errors import ConfigError
from harness.target import ARM64, I386, X86_64, Target


def test_qemu_args_listen_on_loopback_only():
    assert gdb.qemu_args(1234, wait=False) == ["-gdb", "tcp:127.0.0.1:1234"]
    assert gdb.qemu_args(1234, wait=True) == ["-gdb", "tcp:127.0.0.1:1234", "-S"]
    assert "-s" not in gdb.qemu_args(1234, wait=True)  # -s would listen on every address


@pytest.mark.parametrize("port", [0, -1, 65536])
def test_a_port_that_is_not_one_is_a_usage_error(port):
    with pytest.raises(ConfigError, match="--gdb-port"):
        gdb.qemu_args(port, wait=False)


def test_free_port_is_free_on_loopback():
    port = gdb.free_port()
    assert 1 <= port <= 65535
    with socket.socket() as s:  # free: we can bind it on 127.0.0.1 ourselves
        s.bind(("127.0.0.1", port))


def test_free_port_binds_only_loopback(monkeypatch):
    bound = []

    class Spy(socket.socket):
        def bind(self, addr):
            bound.append(addr)
            super().bind(addr)

    monkeypatch.setattr(gdb.socket, "socket", Spy)
    gdb.free_port()
    assert bound == [("127.0.0.1", 0)]


def test_gdb_command_loads_vmlinux_helpers_and_attaches(tmp_path):
    bdir = tmp_path / "build"
    bdir.mkdir()
    (bdir / "vmlinux-gdb.py").write_text("# helpers\n")
    vmlinux = bdir / "images" / "series" / "vmlinux"
    cmd = gdb.gdb_command(Target(X86_64), vmlinux, bdir, 4321)
    assert cmd[:3] == [gdb.gdb_binary(Target(X86_64)), "-q", str(vmlinux)]
    assert cmd[cmd.index("-iex") + 1] == f"add-auto-load-safe-path {bdir}"
    exs = [cmd[i + 1] for i, a in enumerate(cmd) if a == "-ex"]
    # The helpers first: `target remote` comes last, so more -ex can follow it.
    assert exs == [f"source {bdir / 'vmlinux-gdb.py'}", "target remote 127.0.0.1:4321"]
    assert shlex.split(gdb.printed(cmd)) == cmd


def test_gdb_command_without_helpers_still_attaches(tmp_path):
    cmd = gdb.gdb_command(Target(X86_64), tmp_path / "vmlinux", tmp_path, 4321)
    assert not any(a.startswith("source ") for a in cmd)
    assert cmd[-2:] == ["-ex", "target remote 127.0.0.1:4321"]


def test_gdb_for_the_hosts_architecture_multiarch_for_others(monkeypatch):
    monkeypatch.setattr(gdb, "host_arch", lambda: "x86_64")
    monkeypatch.setattr("harness.target.host_arch", lambda: "x86_64")
    monkeypatch.setattr(gdb.shutil, "which", lambda name: f"/usr/bin/{name}")
    assert gdb.gdb_binary(Target(X86_64)) == "gdb"
    assert gdb.gdb_binary(Target(I386)) == "gdb"
    assert gdb.gdb_binary(Target(ARM64)) == "gdb-multiarch"
    assert gdb.gdb_binary(Target(X86_64, "clang")) == "gdb"
    # Only gdb-multiarch installed: it debugs the host's architecture too.
    monkeypatch.setattr(gdb.shutil, "which",
                        lambda name: "/usr/bin/gdb-multiarch" if name == "gdb-multiarch" else None)
    assert gdb.gdb_binary(Target(X86_64)) == "gdb-multiarch"


def test_problems_name_missing_gdb_and_debug_info(monkeypatch, tmp_path):
    monkeypatch.setattr(gdb.shutil, "which", lambda name: None)
    config = tmp_path / "config"
    config.write_text("# CONFIG_DEBUG_INFO is not set\n")
    out = gdb.problems(Target(X86_64), config)
    assert any("apt-get install gdb" in p for p in out)
    assert any("no CONFIG_DEBUG_INFO" in p for p in out)
    monkeypatch.setattr(gdb.shutil, "which", lambda name: f"/usr/bin/{name}")
    config.write_text("CONFIG_DEBUG_INFO=y\n")
    assert gdb.problems(Target(X86_64), config) == []


def _parse(*argv):
    return cli.build_parser().parse_args(["boot", *argv])


def test_cli_flags_only_on_boot():
    args = _parse("--gdb")
    assert args.gdb and args.gdb_port is None and not args.gdb_wait
    args = _parse("--gdb-port", "1234", "--gdb-wait")
    assert args.gdb_port == 1234 and args.gdb_wait
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["test", "--gdb"])
    assert cli._gdb_port(_parse()) is None
    assert cli._gdb_port(_parse("--gdb-port", "1234")) == 1234
    assert 1 <= cli._gdb_port(_parse("--gdb-wait")) <= 65535  # --gdb-wait implies --gdb
    with pytest.raises(ConfigError):
        cli._gdb_port(_parse("--gdb-port", "0"))


@pytest.fixture
def boot_without_qemu(monkeypatch, tmp_path):
    """cmd_boot up to the exec, with a fake image and QEMU's argv captured."""
    idir = tmp_path / "build" / "images" / "series"
    idir.mkdir(parents=True)
    for name in ("bzImage", "vmlinux"):
        (idir / name).write_bytes(b"")
    (idir / "config").write_text("CONFIG_DEBUG_INFO=y\n")
    img = run.KernelImage(idir / "bzImage", {"release": "6.12.0", "tree": str(tmp_path / "src"),
                                             "vmlinux": str(idir / "vmlinux")})
    monkeypatch.setattr(run, "last_image", lambda req: img)
    monkeypatch.setattr(run, "build_dir", lambda req: tmp_path / "build")
    monkeypatch.setattr(run, "prepare_rootfs", lambda req, img, rec: tmp_path / "rootfs")
    monkeypatch.setattr(run, "qemu_available", lambda arch: True)
    execs = []
    monkeypatch.setattr(cli.os, "execvp", lambda file, argv: execs.append(argv))

    def boot(*argv):
        args = _parse("--accel", "tcg", "--results-dir", str(tmp_path / "results"), *argv)
        assert cli.cmd_boot(args) == 0
        return execs[-1]

    return boot, idir


def test_boot_gdb_adds_the_stub_and_nokaslr_and_prints_gdb(boot_without_qemu, capsys):
    boot, idir = boot_without_qemu
    qemu = boot("--gdb-port", "4321", "--gdb-wait")
    assert qemu[qemu.index("-gdb") + 1] == "tcp:127.0.0.1:4321" and "-S" in qemu
    assert "nokaslr" in qemu[qemu.index("-append") + 1].split()
    assert qemu[qemu.index("-serial") + 1] == "mon:stdio"  # still the interactive console
    lines = capsys.readouterr().out.splitlines()
    printed = shlex.split(next(ln for ln in lines if ln.startswith("gdb")))
    assert str(idir / "vmlinux") in printed  # the image's copy, not the build directory's
    assert "target remote 127.0.0.1:4321" in printed


def test_boot_without_gdb_is_unchanged(boot_without_qemu, capsys):
    boot, _ = boot_without_qemu
    qemu = boot()
    assert "-gdb" not in qemu and "-S" not in qemu and "-s" not in qemu
    assert "nokaslr" not in qemu[qemu.index("-append") + 1]
    assert "target remote" not in capsys.readouterr().out


def test_boot_gdb_with_ssh_is_refused(tmp_path):
    args = _parse("--gdb", "--ssh", "--results-dir", str(tmp_path))
    with pytest.raises(ConfigError, match="--gdb and --ssh"):
        cli.cmd_boot(args)


def test_build_makes_the_gdb_helpers_when_the_config_asks(tmp_path):
    from harness.stages.build import make_command

    (tmp_path / ".config").write_text("#\n# comment\nCONFIG_GDB_SCRIPTS=y\n")
    assert make_command(Path("/src"), tmp_path, 2)[-2:] == ["bzImage", "scripts_gdb"]
    assert make_command(Path("/src"), tmp_path, 2, ("fs/file.o",))[-1] == "fs/file.o"
    (tmp_path / ".config").write_text("#\n# CONFIG_GDB_SCRIPTS is not set\n")
    assert make_command(Path("/src"), tmp_path, 2)[-1] == "bzImage"
