"""Typed errors; cli.py turns them into the documented exit codes."""

EXIT_OK = 0
EXIT_TEST_FAILURE = 1
EXIT_USAGE = 2
EXIT_BUILD = 3
EXIT_INFRA = 4
# A bug in the harness itself (sysexits.h EX_SOFTWARE), never a verdict on the kernel.
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130


class HarnessError(Exception):
    """Base class: a failure the user must see as a message, not a traceback."""

    exit_code = EXIT_INFRA


class ConfigError(HarnessError):
    """Bad profile, bad flag, missing file: the user's input is wrong."""

    exit_code = EXIT_USAGE


class SeriesError(HarnessError):
    """A patch of the series does not apply to the base."""

    exit_code = EXIT_USAGE


class KconfigError(HarnessError):
    """Requested options did not survive olddefconfig."""

    exit_code = EXIT_USAGE


class BuildError(HarnessError):
    """The kernel (or the guest userland) failed to compile."""

    exit_code = EXIT_BUILD


class InfraError(HarnessError):
    """QEMU, the host or a missing tool failed: not the kernel's fault."""

    exit_code = EXIT_INFRA


class Interrupted(HarnessError):
    """SIGINT or SIGTERM arrived; partial results are kept."""

    exit_code = EXIT_INTERRUPTED
