"""The text a user reads first: `harness --help`."""

import json
import re

from harness import cli

INTERNAL = 70  # sysexits.h EX_SOFTWARE; README's exit-code table


def _help() -> str:
    return cli.build_parser().format_help()


def test_help_describes_the_tool_not_the_module():
    text = _help()
    assert "argparse" not in text and "handler" not in text
    for words in ("build the kernel", "boot it in QEMU", "guest", "summary.txt",
                  "results.json", "exit codes"):
        assert words in text


def test_help_lists_every_command_in_data_flow_order():
    text = _help()
    listed = re.findall(r"^    (\S+)", text.split("commands:", 1)[1], re.M)
    assert listed == cli.COMMAND_ORDER
    assert set(listed) == set(cli.build_parser()._subparsers._group_actions[0].choices)


def test_an_internal_error_has_its_own_exit_code_status_and_traceback(tmp_path, monkeypatch,
                                                                       capsys):
    """A bug in the harness is not `tests failed` (1), and results.json does not stay
    `running`: exit 70, status error, the traceback in the results directory."""
    from harness import errors, run

    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))

    def broken(req, rec):
        raise KeyError("a bug in the harness")
    monkeypatch.setattr(run, "build_kernel", broken)
    code = cli.main(["build", "--no-series", "--results-dir", str(tmp_path / "results")])
    assert code == INTERNAL == errors.EXIT_INTERNAL
    (run_dir,) = [p for p in (tmp_path / "results").iterdir() if not p.is_symlink()]
    data = json.loads((run_dir / "results.json").read_text())
    assert data["status"] == "error" and data["exit_code"] == INTERNAL
    tb = (run_dir / "traceback.txt").read_text()
    assert "in broken" in tb and "KeyError: 'a bug in the harness'" in tb
    assert str(run_dir / "traceback.txt") in capsys.readouterr().err


def test_an_internal_error_outside_a_run_exits_70_with_the_traceback(monkeypatch, capsys):
    def broken(args):
        raise ValueError("bug before any results directory")
    monkeypatch.setattr(cli, "profile_from_args", broken)
    assert cli.main(["build"]) == INTERNAL
    assert "ValueError: bug before any results directory" in capsys.readouterr().err
