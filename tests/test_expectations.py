import pytest

from harness import expectations as ex
from harness.errors import ConfigError
from harness.ktap import Status
from harness.profile import project_dir

TABLE = """
file_charge:
  _default: {vanilla: pass, series: pass}
  over_limit.open_fails_with_enomem: {vanilla: fail, series: pass}
"""


def test_lookup_specific_then_default_then_pass():
    t = ex.parse(TABLE, "e.yaml")
    assert ex.lookup(t, "file_charge", "over_limit.open_fails_with_enomem").on("vanilla") == "fail"
    assert ex.lookup(t, "file_charge", "other").on("vanilla") == "pass"
    assert ex.lookup(t, "unknown_prog", "x") == ex.Expectation()


@pytest.mark.parametrize("status, want, ok", [
    (Status.PASS, "pass", True), (Status.FAIL, "pass", False), (Status.CRASHED, "fail", True),
    (Status.PASS, "fail", False), (Status.TIMEOUT, "pass", False), (Status.SKIP, "pass", True),
])
def test_matches(status, want, ok):
    assert ex.matches(status, want) is ok


@pytest.mark.parametrize("text, needle", [
    ("p: {t: {vanila: pass}}", "e.yaml: p.t.vanila: unknown key"),
    ("p: {t: {flaky: 3}}", "e.yaml: p.t.flaky: say why"),
    ("p: {t: {series: passes}}", "e.yaml: p.t.series: 'passes' is not one of"),
    ("p: [a]", "e.yaml: p: expected a mapping"),
])
def test_bad_expectations(text, needle):
    with pytest.raises(ConfigError, match=needle):
        ex.parse(text, "e.yaml")


def test_shipped_expectations_parse():
    path = project_dir() / "guest-tests" / "expectations.yaml"
    if path.exists():
        ex.parse(path.read_text(), str(path))


ARCH_TABLE = """
prog:
  t:
    vanilla: pass
    series: pass
    arch:
      i386: {vanilla: fail, series: fail, why: "4 MiB huge pages: 2000 mappings do not fit 3 GiB"}
"""


def test_an_arch_override_applies_on_that_arch_only():
    assert ex.parse(ARCH_TABLE, "e.yaml")["prog"]["t"] == ex.Expectation("pass", "pass")
    assert ex.parse(ARCH_TABLE, "e.yaml", "arm64")["prog"]["t"] == ex.Expectation("pass", "pass")
    assert ex.parse(ARCH_TABLE, "e.yaml", "i386")["prog"]["t"] == ex.Expectation("fail", "fail")


@pytest.mark.parametrize("body,msg", [
    ("arch: {mips: {series: fail, why: x}}", r"e.yaml: prog.t.arch.mips: unknown architecture"),
    ("arch: {i386: {series: fail}}", r"prog.t.arch.i386: expected .*why: <reason>"),
    ("arch: {i386: {series: broken, why: x}}", r"prog.t.arch.i386.series: 'broken' is not"),
    ("arch: [i386]", r"prog.t.arch: expected a mapping"),
])
def test_bad_arch_overrides_name_the_key(body, msg):
    with pytest.raises(ConfigError, match=msg):
        ex.parse(f"prog:\n  t: {{vanilla: pass, {body}}}\n", "e.yaml")
