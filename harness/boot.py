"""Stage 6, boot: run QEMU, watch the serial console, enforce timeouts.

The console is driven with pexpect. Three clocks: time to the first console
line (a KVM that hangs guests shows nothing), console silence (a hung
guest), and the whole run. Whatever ends the run, QEMU is killed and the
console log on disk holds everything seen so far.
"""

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import pexpect

from harness import printer
from harness.profile import Timeouts
from harness.qemu import KvmVerdicts

KVM_PROBE_SECONDS = 10
_TIMESTAMP = re.compile(r"^\[\s*\d+\.\d+\]\s?")
_KTAP = re.compile(r"^\s*(KTAP|TAP) version \d+")
GUEST_START = "harness: running "
GUEST_DONE = "harness: guest tests done"
PANIC = "Kernel panic - not syncing"
# After a panic line the kernel reboots (panic=-1), QEMU exits (-no-reboot);
# if it does not, don't wait for the silence timeout.
PANIC_GRACE_SECONDS = 5


@dataclass
class BootOutcome:
    accel: str
    # done: init said it finished; exited: QEMU ended before that;
    # no_output / silence / timeout: we killed it; interrupted: Ctrl-C/SIGTERM.
    end: str
    seconds: float
    exit_status: int | None = None
    first_output: float | None = None  # seconds from QEMU start
    first_ktap: float | None = None
    guest_start: float | None = None
    lines: list[str] = field(default_factory=list)

    @property
    def completed(self) -> bool:
        return self.end == "done"


def strip_timestamp(line: str) -> str:
    return _TIMESTAMP.sub("", line)


def run_qemu(cmd: list[str], accel: str, log_path: Path, timeouts: Timeouts,
             first_output_limit: float, echo: bool = False) -> BootOutcome:
    t0 = time.monotonic()
    out = BootOutcome(accel=accel, end="exited", seconds=0.0)
    deadline = t0 + timeouts.run
    with open(log_path, "a", errors="replace") as log:
        log.write(f"# {' '.join(cmd)}\n")
        log.flush()
        child = pexpect.spawn(cmd[0], cmd[1:], encoding="utf-8", codec_errors="replace",
                              timeout=None, echo=False, dimensions=(50, 500))
        try:
            while True:
                now = time.monotonic()
                if out.first_output is None:
                    wait = t0 + first_output_limit - now
                    why = "no_output"
                else:
                    wait = timeouts.silence
                    why = "silence"
                if deadline - now < wait:
                    wait, why = deadline - now, "timeout"
                if wait <= 0:
                    out.end = why
                    break
                idx = child.expect_exact(["\n", pexpect.EOF, pexpect.TIMEOUT], timeout=wait)
                if idx == 2:
                    out.end = why
                    break
                text = child.before.rstrip("\r") if idx == 0 else child.before
                if idx == 1:
                    if text:
                        out.lines.append(text)
                        log.write(text + "\n")
                    break
                elapsed = time.monotonic() - t0
                out.lines.append(text)
                log.write(text + "\n")
                log.flush()
                if echo:
                    print(text, flush=True)
                # QEMU's own complaints are not the guest talking.
                if out.first_output is None and not text.startswith(cmd[0]):
                    out.first_output = elapsed
                bare = strip_timestamp(text)
                if out.first_ktap is None and _KTAP.match(bare):
                    out.first_ktap = elapsed
                if bare.startswith(GUEST_START) and out.guest_start is None:
                    out.guest_start = elapsed
                if bare.startswith(GUEST_DONE):
                    out.end = "done"
                if PANIC in text:
                    deadline = min(deadline, time.monotonic() + PANIC_GRACE_SECONDS)
        except KeyboardInterrupt:
            out.end = "interrupted"
            log.write("# harness: interrupted, QEMU killed\n")
            raise
        finally:
            if child.isalive():
                child.terminate(force=True)
            child.close(force=True)
            out.exit_status = child.exitstatus
            out.seconds = time.monotonic() - t0
            if out.end in ("no_output", "silence", "timeout"):
                log.write(f"# harness: QEMU killed ({out.end}) after {out.seconds:.1f}s\n")
    return out


def boot(commands: dict[str, list[str]], accels: list[str], log_path: Path,
         timeouts: Timeouts, cache: Path, echo: bool = False) -> BootOutcome:
    """Boot with the first accelerator that shows console output."""
    outcome = None
    for i, accel in enumerate(accels):
        probing = accel == "kvm" and i + 1 < len(accels)
        limit = min(KVM_PROBE_SECONDS, timeouts.first_output) if probing else timeouts.first_output
        outcome = run_qemu(commands[accel], accel, log_path, timeouts, limit, echo)
        if probing:
            works = outcome.first_output is not None
            KvmVerdicts(cache).put(works, "" if works else f"no console output in {limit}s")
            if not works:
                printer.warn(f"KVM: /dev/kvm exists but the guest printed nothing "
                             f"({outcome.end} after {outcome.seconds:.1f}s; nested "
                             "virtualization?); falling back to TCG")
                continue
        break
    assert outcome is not None
    return outcome
