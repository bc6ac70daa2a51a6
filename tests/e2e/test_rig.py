"""ember-rig end to end: one L1 boot through the command line checks several things at once.

These tests run the nested path (EMBER_RIG=nested) whatever the host, since that is the
part of the rig that can break; they never skip: a rig that cannot run fails them.
"""

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import ember.rig
from ember.rig import Mode, _mode

pytestmark = pytest.mark.e2e

RIG = Path(sys.executable).with_name("ember-rig")
ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 600

# One shell session inside L1; each check prints `name=value` on its own line.
PROBE = r"""
echo hi
test -c /dev/kvm && echo kvm=yes
echo svm=$(grep -c -w svm /proc/cpuinfo)
echo cwd=$(pwd)
echo seen=$(cat host-made.txt)
echo from-l1 > overlay-write.txt && echo wrote=$(cat overlay-write.txt)
echo py=$("$PY" -c 'import sys; print(sys.prefix == sys.base_prefix or "venv")')
read line && echo stdin=$line
read more || echo stdin-eof=yes
"$PY" -c 'import os; print("env=" + repr(os.environ["EMBER_RIG_TEST_VALUE"]))'
echo to-stderr >&2
exit 7
"""
NASTY_VALUE = "it's a $VALUE with `ticks`\nand a newline"


@dataclass(frozen=True)
class Boot:
    returncode: int
    stdout: str
    stderr: str
    results: dict[str, str]
    host_dir: Path
    scratch: Path
    wall_s: float


@pytest.fixture(scope="module")
def boot(tmp_path_factory: pytest.TempPathFactory) -> Boot:
    host_dir = tmp_path_factory.mktemp("rig")
    (host_dir / "host-made.txt").write_text("made-on-host\n")
    scratch = tmp_path_factory.mktemp("rig-tmp")  # the rig's own temporary files go here
    env = {**os.environ, "EMBER_RIG": "nested", "PY": sys.executable, "TMPDIR": str(scratch),
           "EMBER_RIG_TEST_VALUE": NASTY_VALUE}
    started = time.monotonic()
    proc = subprocess.run(
        [str(RIG), "run", "--timeout", str(TIMEOUT), "--", "sh", "-c", PROBE],
        cwd=host_dir, env=env, input=b"typed line\n", capture_output=True, check=False,
    )
    wall = time.monotonic() - started
    out, err = proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")
    results = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    if "hi" not in out.splitlines():
        pytest.fail(f"the rig did not run the command (exit {proc.returncode}):\n{out}\n{err}")
    return Boot(proc.returncode, out, err, results, host_dir, scratch, wall)


def test_output_and_exit_status_come_back(boot: Boot) -> None:
    assert boot.stdout.splitlines()[0] == "hi"
    assert boot.returncode == 7


def test_l1_has_a_kvm_with_svm(boot: Boot) -> None:
    assert boot.results["kvm"] == "yes"
    assert int(boot.results["svm"]) > 0


def test_command_runs_in_the_callers_directory(boot: Boot) -> None:
    assert boot.results["cwd"] == str(boot.host_dir)


def test_command_sees_files_made_on_the_host_before_launch(boot: Boot) -> None:
    assert boot.results["seen"] == "made-on-host"


def test_writes_stay_in_the_overlay(boot: Boot) -> None:
    assert boot.results["wrote"] == "from-l1"
    assert not (boot.host_dir / "overlay-write.txt").exists()


def test_venv_interpreter_works_unchanged(boot: Boot) -> None:
    assert boot.results["py"] == ("venv" if sys.prefix != sys.base_prefix else "True")


def test_stdin_reaches_the_command_and_ends(boot: Boot) -> None:
    assert boot.results["stdin"] == "typed line"
    assert boot.results["stdin-eof"] == "yes"


def test_environment_survives_quoting(boot: Boot) -> None:
    assert boot.results["env"] == repr(NASTY_VALUE)


def test_stderr_is_separate_and_reports_the_start_time(boot: Boot) -> None:
    assert "to-stderr" not in boot.stdout
    lines = boot.stderr.splitlines()
    assert "to-stderr" in lines
    ready = [line for line in lines if line.startswith("ember-rig: L1 ready in ")]
    assert len(ready) == 1, boot.stderr
    print(f"{ready[0]} (whole run {boot.wall_s:.1f} s)", file=sys.stderr)


def test_no_kernel_messages_or_markers_in_the_output(boot: Boot) -> None:
    assert "\x1e" not in boot.stdout
    assert "reboot" not in boot.stdout and "Power down" not in boot.stdout
    assert not [line for line in boot.stdout.splitlines() if line.startswith("[")]


def test_nothing_is_left_behind(boot: Boot) -> None:
    assert list(boot.scratch.iterdir()) == []
    qemus = subprocess.run(["pgrep", "-af", "qemu-system"], capture_output=True, text=True)
    assert str(boot.scratch) not in qemus.stdout


def test_python_api_captures_and_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBER_RIG", "nested")
    started = time.monotonic()
    done = ember.rig.run(["sleep", "600"], cwd=str(ROOT), timeout=3)
    assert done.returncode == 124 and done.mode is Mode.NESTED
    assert time.monotonic() - started < 60


def test_python_api_stops_a_silent_command_and_keeps_its_output(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A silence limit is how callers catch a frozen L1; the output so far comes back."""
    monkeypatch.setenv("EMBER_RIG", "nested")
    started = time.monotonic()
    with pytest.raises(ember.rig.L1Error, match="printed nothing for 5 s") as stopped:
        ember.rig.run(["sh", "-c", "echo before; echo err-before >&2; sleep 600"],
                      cwd=str(ROOT), timeout=300, silence_limit=5)
    assert stopped.value.stdout == b"before\n"
    assert stopped.value.stderr == b"err-before\n"
    assert time.monotonic() - started < 120


def test_probe_agrees_with_the_cpu() -> None:
    """Without VMX/SVM in the host's CPU flags no KVM here runs guests natively, so the
    rig must choose the nested path on its own."""
    flags = Path("/proc/cpuinfo").read_text().split()
    if "vmx" in flags or "svm" in flags:
        pytest.xfail("hardware virtualization present: either mode can be right")
    assert _mode.choose({}) is Mode.NESTED
