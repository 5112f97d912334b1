"""The text a user reads first: `harness --help`."""

import re

from harness import cli


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
