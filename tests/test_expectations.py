import pytest

from harness import expectations as ex
from harness.errors import ConfigError
from harness.profile import project_dir

TABLE = """
file_charge:
  _default: {vanilla: pass, series: pass}
  over_limit.open_fails_with_enomem: {vanilla: {fail: "oom_kill 0 -> 1"}, series: pass}
  t2: {vanilla: {fail: '/^errno \\d+$/'}, series: skip}
"""


def test_lookup_specific_then_default_then_pass():
    t = ex.parse(TABLE, "e.yaml")
    want = ex.lookup(t, "file_charge", "over_limit.open_fails_with_enomem").on("vanilla")
    assert (want.want, want.shows) == ("fail", "oom_kill 0 -> 1")
    assert ex.lookup(t, "file_charge", "other").on("vanilla") == ex.PASS
    assert ex.lookup(t, "file_charge", "t2").on("series") == ex.SKIP
    assert ex.lookup(t, "unknown_prog", "x") == ex.Expectation()


def test_a_declared_failure_is_a_substring_or_a_regex():
    fail = ex.failing("oom_kill 0 -> 1")
    assert fail.seen_in(["  # opener killed by signal 9 (OOM kill?), oom_kill 0 -> 1"])
    assert not fail.seen_in(["  # oom_kill 0 -> 0"])
    regex = ex.failing(r"/^percpu \d+$/")
    assert regex.seen_in(["  memory.current 7344128", "  percpu 4092288"])
    assert not regex.seen_in(["  # percpu 12 pages"])
    assert str(fail) == "fail with 'oom_kill 0 -> 1'" and str(ex.SKIP) == "skip"


@pytest.mark.parametrize("text, needle", [
    ("p: {t: {vanila: pass}}", "e.yaml: p.t.vanila: unknown key"),
    ("p: {t: {flaky: 3}}", "e.yaml: p.t.flaky: say why"),
    ("p: {t: {series: passes}}", "e.yaml: p.t.series: 'passes' is not one of"),
    ("p: [a]", "e.yaml: p: expected a mapping"),
    # A declared failure names the failure it expects.
    ("p: {t: {series: fail}}", "e.yaml: p.t.series: a declared failure names the failure"),
    ("p: {t: {series: {fail: ''}}}", "e.yaml: p.t.series.fail: expected the text"),
    ("p: {t: {series: {fail: 3}}}", "e.yaml: p.t.series.fail: expected the text"),
    ("p: {t: {series: {fail: x, why: y}}}", "e.yaml: p.t.series: .* is not one of"),
    ("p: {t: {series: {fail: '/(/'}}}", "e.yaml: p.t.series.fail: bad regular expression"),
])
def test_bad_expectations(text, needle):
    with pytest.raises(ConfigError, match=needle):
        ex.parse(text, "e.yaml")


def test_shipped_expectations_parse_and_name_every_failure():
    path = project_dir() / "guest-tests" / "expectations.yaml"
    for arch in ("x86_64", "i386"):
        table = ex.load(path, arch)
        assert table["file_charge"], "the shipped table declares file_charge"
        fails = [e.on(k) for tests in table.values() for e in tests.values()
                 for k in ex.KERNELS if e.on(k).want == "fail"]
        assert fails and all(f.shows for f in fails)


def test_shipped_flaky_declarations_give_a_cause():
    path = project_dir() / "guest-tests" / "expectations.yaml"
    flaky = {t: e.flaky for tests in ex.load(path, "x86_64").values()
             for t, e in tests.items() if e.flaky}
    assert "test_kmem_kernel_stacks" not in flaky  # cause unknown: not flaky
    assert all("not yet known" not in why and "unknown" not in why for why in flaky.values())


ARCH_TABLE = """
prog:
  t:
    vanilla: pass
    series: pass
    arch:
      i386: {vanilla: {fail: ENOMEM}, series: {fail: ENOMEM},
             why: "4 MiB huge pages: 2000 mappings do not fit 3 GiB"}
"""


def test_an_arch_override_applies_on_that_arch_only():
    assert ex.parse(ARCH_TABLE, "e.yaml")["prog"]["t"] == ex.Expectation(ex.PASS, ex.PASS)
    assert ex.parse(ARCH_TABLE, "e.yaml", "arm64")["prog"]["t"] == ex.Expectation(ex.PASS,
                                                                                 ex.PASS)
    enomem = ex.failing("ENOMEM")
    assert ex.parse(ARCH_TABLE, "e.yaml", "i386")["prog"]["t"] == ex.Expectation(enomem, enomem)


@pytest.mark.parametrize("body,msg", [
    ("arch: {mips: {series: skip, why: x}}", r"e.yaml: prog.t.arch.mips: unknown architecture"),
    ("arch: {i386: {series: skip}}", r"prog.t.arch.i386: expected .*why: <reason>"),
    ("arch: {i386: {series: broken, why: x}}", r"prog.t.arch.i386.series: 'broken' is not"),
    ("arch: {i386: {series: fail, why: x}}", r"prog.t.arch.i386.series: a declared failure"),
    ("arch: [i386]", r"prog.t.arch: expected a mapping"),
])
def test_bad_arch_overrides_name_the_key(body, msg):
    with pytest.raises(ConfigError, match=msg):
        ex.parse(f"prog:\n  t: {{vanilla: pass, {body}}}\n", "e.yaml")


PROFILE_TABLE = """
prog:
  t:
    vanilla: skip
    series: skip
    profile:
      distro: {vanilla: pass, series: {fail: "charged twice"},
               why: "AppArmor: only Debian's config has it"}
"""


def test_a_profile_override_applies_with_that_profile_only():
    skip = ex.Expectation(ex.SKIP, ex.SKIP)
    assert ex.parse(PROFILE_TABLE, "e.yaml")["prog"]["t"] == skip
    assert ex.parse(PROFILE_TABLE, "e.yaml", profile="debug")["prog"]["t"] == skip
    assert ex.parse(PROFILE_TABLE, "e.yaml", "x86_64", "distro")["prog"]["t"] == \
        ex.Expectation(ex.PASS, ex.failing("charged twice"))


@pytest.mark.parametrize("body,msg", [
    ("profile: {distro: {series: skip}}", r"prog.t.profile.distro: expected .*why: <reason>"),
    ("profile: {distro: {series: fail, why: x}}", r"prog.t.profile.distro.series: a declared"),
    ("profile: [distro]", r"prog.t.profile: expected a mapping of profiles"),
])
def test_bad_profile_overrides_name_the_key(body, msg):
    with pytest.raises(ConfigError, match=msg):
        ex.parse(f"prog:\n  t: {{vanilla: pass, {body}}}\n", "e.yaml")
