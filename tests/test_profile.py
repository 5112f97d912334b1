from pathlib import Path

import pytest

from harness import qemu
from harness.errors import ConfigError
from harness.profile import Profile, parse_profile, project_dir
from harness.target import X86_64


def test_empty_profile_gives_defaults():
    prof = parse_profile("", "p.yaml")
    assert prof == Profile()
    assert prof.series == "patches/series"


def test_values_override_defaults():
    prof = parse_profile("qemu: {memory: 2G, smp: 2, extra_args: ['-s']}\ntests: [smoke]\n",
                         "p.yaml")
    assert (prof.qemu.memory, prof.qemu.smp, prof.qemu.extra_args) == ("2G", 2, ["-s"])
    assert prof.tests == ["smoke"]


def test_series_null_means_base_alone():
    assert parse_profile("series: null\n", "p.yaml").series == ""


@pytest.mark.parametrize("text, needle", [
    ("qemu: {memroy: 1G}\n", "p.yaml: qemu.memroy: unknown key"),
    ("bogus: 1\n", "p.yaml: bogus: unknown key"),
    ("qemu: {smp: two}\n", "p.yaml: qemu.smp: expected an integer"),
    ("qemu: {smp: true}\n", "p.yaml: qemu.smp: expected an integer"),
    ("tests: smoke\n", "p.yaml: tests: expected a list"),
    ("timeouts: 5\n", "p.yaml: timeouts: expected a mapping"),
    ("qemu: {extra_args: [1, {a: b}]}\n", "p.yaml: qemu.extra_args[1]: expected str"),
    ("- a\n- b\n", "expected a mapping at the top level"),
    ("qemu: {memory: [\n", "p.yaml: invalid YAML"),
])
def test_bad_profiles_name_file_and_key(text, needle):
    with pytest.raises(ConfigError) as e:
        parse_profile(text, "p.yaml")
    assert needle in str(e.value)
    assert e.value.exit_code == 2


def test_shipped_profiles_are_valid():
    paths = sorted((project_dir() / "profiles").glob("*.yaml"))
    assert {"default.yaml", "debug.yaml"} <= {p.name for p in paths}
    for path in paths:
        prof = parse_profile(path.read_text(), str(path))
        # Each names a series and an expectations table that exist.
        assert (project_dir() / prof.series).is_file(), path
        assert (project_dir() / prof.expectations).is_file(), path


@pytest.mark.parametrize("name", ["default", "debug"])
def test_shipped_profiles_boot_two_cpus_round_robin_under_tcg(name):
    path = project_dir() / "profiles" / f"{name}.yaml"
    prof = parse_profile(path.read_text(), str(path))
    assert prof.qemu.smp == 2 and not prof.qemu.icount
    line = qemu.kernel_cmdline(X86_64.qemu, ["smoke"], 60, prof.qemu.cmdline,
                               cpus=prof.qemu.smp)
    cmd = qemu.qemu_command(X86_64.qemu, prof.qemu, "tcg", Path("/k"), Path("/r"), line)
    assert cmd[cmd.index("-smp") + 1] == "2"
    # thread=multi gave rare spurious int3 Oopses (see profiles/default.yaml).
    assert cmd[cmd.index("-accel") + 1] == "tcg,thread=single"
    assert "HARNESS_CPUS=2" in cmd[cmd.index("-append") + 1].split()
