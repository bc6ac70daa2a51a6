"""Mode choice and the command line, without booting anything."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ember.rig import RigError, _exchange, _mode, cli
from ember.rig._mode import Mode

RIG = [sys.executable, "-c", "import sys; from ember.rig.cli import main; sys.exit(main())"]


def test_env_override_forces_a_mode() -> None:
    assert _mode.choose({"EMBER_RIG": "direct"}) is Mode.DIRECT
    assert _mode.choose({"EMBER_RIG": "nested"}) is Mode.NESTED


def test_bad_override_is_a_clear_error() -> None:
    with pytest.raises(RigError, match="direct.*nested"):
        _mode.choose({"EMBER_RIG": "sideways"})


def test_without_override_the_probe_decides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_mode, "_kvm_boots_linux", lambda: True)
    assert _mode.choose({}) is Mode.DIRECT
    monkeypatch.setattr(_mode, "_kvm_boots_linux", lambda: False)
    assert _mode.choose({}) is Mode.NESTED


def test_direct_mode_execs_the_command_with_its_status(tmp_path: Path) -> None:
    env = {**os.environ, "EMBER_RIG": "direct"}
    proc = subprocess.run([*RIG, "run", "--", "sh", "-c", "pwd; echo out; echo err >&2; exit 7"],
                          cwd=tmp_path, env=env, capture_output=True, check=False)
    assert proc.returncode == 7
    assert proc.stdout == f"{tmp_path}\nout\n".encode()
    assert proc.stderr == b"err\n"


def test_direct_mode_reports_a_missing_command() -> None:
    env = {**os.environ, "EMBER_RIG": "direct"}
    proc = subprocess.run([*RIG, "run", "--", "/no/such/cmd"], env=env, capture_output=True,
                          check=False)
    assert proc.returncode == 127
    assert proc.stderr.startswith(b"ember-rig: /no/such/cmd")


def test_missing_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["run", "--"])
    assert exit_.value.code == 2
    assert "missing command" in capsys.readouterr().err


def test_pipe_mode_keeps_bytes_and_terminal_mode_sizes_the_tty(tmp_path: Path) -> None:
    _exchange.write_job(tmp_path, [b"true"], b"/", {}, None)
    assert "-echo" in (tmp_path / "mode.sh").read_text()
    _exchange.write_job(tmp_path, [b"true"], b"/", {}, (30, 100))
    assert "rows 30 cols 100" in (tmp_path / "mode.sh").read_text()
