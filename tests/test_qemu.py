from pathlib import Path

import pytest

from harness import qemu
from harness.errors import ConfigError
from harness.profile import QemuConfig, parse_profile, size_bytes
from harness.qemu import accel_option
from harness.target import X86_64


def _cmd(accel="tcg", **kw):
    cfg = QemuConfig(**kw)
    line = qemu.kernel_cmdline(X86_64.qemu, ["smoke", "file_charge"], 60, ["quiet"])
    return qemu.qemu_command(X86_64.qemu, cfg, accel, Path("/k/bzImage"), Path("/r.cpio"), line)


def test_command_is_an_argv_list_with_no_shell():
    cmd = _cmd()
    assert cmd[0] == "qemu-system-x86_64"
    assert cmd[cmd.index("-accel") + 1] == "tcg"
    assert cmd[cmd.index("-kernel") + 1] == "/k/bzImage"
    assert cmd[cmd.index("-initrd") + 1] == "/r.cpio"
    assert "-no-reboot" in cmd and "-nodefaults" in cmd
    assert cmd[cmd.index("-serial") + 1] == "stdio"
    assert cmd[cmd.index("-cpu") + 1] == "qemu64,+rdrand"  # a seeded RNG at boot
    assert "-icount" not in cmd


def test_cmdline_panics_on_oops_and_names_tests():
    append = _cmd()[_cmd().index("-append") + 1]
    for word in ("console=ttyS0,115200", "panic=-1", "oops=panic", "softlockup_panic=1",
                 "harness.tests=smoke,file_charge", "harness.per_test=60", "quiet"):
        assert word in append.split()


def test_icount_only_with_tcg():
    assert "-icount" not in _cmd("kvm", icount=True)
    cmd = _cmd("tcg", icount=True)
    assert cmd[cmd.index("-icount") + 1] == "shift=0,sleep=off"


def test_smp_tcg_runs_one_host_thread_per_vcpu():
    cmd = _cmd("tcg", smp=2)
    assert cmd[cmd.index("-smp") + 1] == "2"
    assert cmd[cmd.index("-accel") + 1] == "tcg,thread=multi"


def test_smp_kvm_needs_no_tcg_threads():
    cmd = _cmd("kvm", smp=4)
    assert (cmd[cmd.index("-smp") + 1], cmd[cmd.index("-accel") + 1]) == ("4", "kvm")


def test_one_cpu_tcg_is_plain():
    assert _cmd("tcg", smp=1)[_cmd("tcg", smp=1).index("-accel") + 1] == "tcg"


def test_icount_keeps_single_threaded_tcg():
    # QEMU refuses icount with thread=multi; bench runs icount with -smp 1.
    cmd = _cmd("tcg", smp=2, icount=True)
    assert cmd[cmd.index("-accel") + 1] == "tcg"
    assert cmd[cmd.index("-icount") + 1] == "shift=0,sleep=off"


def test_requested_cpus_reach_the_guest():
    line = qemu.kernel_cmdline(X86_64.qemu, ["smoke"], 60, [], cpus=2)
    assert "HARNESS_CPUS=2" in line.split()
    assert "HARNESS_CPUS" not in qemu.kernel_cmdline(X86_64.qemu, ["smoke"], 60, [])


def test_extra_args_come_last():
    assert _cmd(extra_args=["-s", "-S"])[-2:] == ["-s", "-S"]


@pytest.fixture
def fake_kvm(monkeypatch):
    state = {"usable": (True, "")}
    monkeypatch.setattr(qemu, "kvm_device_usable", lambda: state["usable"])
    return state


def test_accel_auto_tries_kvm_then_tcg(fake_kvm, tmp_path):
    assert qemu.choose_accel("auto", tmp_path)[0] == ["kvm", "tcg"]


def test_accel_auto_without_kvm_device_is_tcg(fake_kvm, tmp_path):
    fake_kvm["usable"] = (False, "/dev/kvm does not exist")
    assert qemu.choose_accel("auto", tmp_path) == (["tcg"], "/dev/kvm does not exist")


def test_kvm_verdict_is_remembered_per_host_boot(fake_kvm, tmp_path, monkeypatch):
    qemu.KvmVerdicts(tmp_path).put(False, "no output")
    accels, why = qemu.choose_accel("auto", tmp_path)
    assert accels == ["tcg"] and "hung a guest" in why
    # A new host boot forgets the verdict.
    monkeypatch.setattr(qemu, "_boot_id", lambda: "another-boot")
    assert qemu.choose_accel("auto", tmp_path)[0] == ["kvm", "tcg"]


def test_explicit_accel_is_obeyed(fake_kvm, tmp_path):
    qemu.KvmVerdicts(tmp_path).put(False, "no output")
    assert qemu.choose_accel("kvm", tmp_path)[0] == ["kvm"]
    assert qemu.choose_accel("tcg", tmp_path)[0] == ["tcg"]


def test_profile_can_keep_smp_tcg_on_one_host_thread():
    cfg = QemuConfig(smp=2, tcg_threads="single")
    assert accel_option("tcg", cfg) == "tcg,thread=single"
    assert accel_option("kvm", cfg) == "kvm"
    with pytest.raises(ConfigError, match="tcg_threads"):
        accel_option("tcg", QemuConfig(smp=2, tcg_threads="many"))



def test_scratch_disk_is_a_sparse_virtio_disk_gone_after_the_boot():
    with qemu.scratch_disk("64M") as args:
        assert args[0] == "-drive"
        opts = dict(o.split("=", 1) for o in args[1].split(","))
        assert (opts["if"], opts["format"]) == ("virtio", "raw")
        image = Path(opts["file"])
        assert image.stat().st_size == 64 << 20
        assert image.stat().st_blocks == 0  # sparse: no disk used until the guest writes
    assert not image.exists() and not image.parent.exists()


@pytest.mark.parametrize("size,expected", [("512M", 512 << 20), ("2G", 2 << 30),
                                           ("4096", 4096), ("1g", 1 << 30)])
def test_sizes_read_as_qemu_reads_them(size, expected):
    assert size_bytes(size) == expected


@pytest.mark.parametrize("size", ["", "M", "0", "1.5G", "2X", "-1G"])
def test_a_bad_size_is_an_error_naming_it(size):
    with pytest.raises(ConfigError, match="is not a size"):
        size_bytes(size)


def test_a_bad_scratch_disk_names_the_file_and_key():
    with pytest.raises(ConfigError, match=r"p\.yaml: qemu\.scratch_disk: '2X' is not a size"):
        parse_profile("qemu:\n  scratch_disk: 2X\n", "p.yaml")
