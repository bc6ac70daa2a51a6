"""The session's I/O loop against a fake QEMU: marker stripping, stdin, status, timeout."""

import sys
import time
from pathlib import Path

import pytest

from ember.rig import _api, _kernel, _qemu, _session
from ember.rig.errors import L1Error, RigError

FAKE = Path(__file__).with_name("fake_l1.py")


@pytest.fixture
def fake_l1(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    behaviour = ["echo"]

    def command(cfg: _qemu.L1Config) -> list[str]:
        return [sys.executable, str(FAKE), str(cfg.serial0), str(cfg.serial1),
                str(cfg.exchange), behaviour[0]]

    kernel = _kernel.Kernel(tmp_path, "test")
    monkeypatch.setattr(_session, "ensure_kernel", lambda: kernel)
    monkeypatch.setattr(_session, "ensure_initramfs", lambda k: tmp_path / "initrd")
    monkeypatch.setattr(_qemu, "command", command)
    return behaviour


def _run(stdin: bytes, timeout: float | None = None) -> tuple[_session.Outcome, bytes, bytes]:
    out, err = bytearray(), bytearray()
    request = _api.nested_request(["true"], None, {}, timeout=timeout)
    outcome = _session.run(request, _session.Streams(out.extend, err.extend, None, stdin))
    return outcome, bytes(out), bytes(err)


def test_boot_log_and_marker_are_stripped_and_status_returned(fake_l1: list[str]) -> None:
    outcome, out, err = _run(b"hello\nworld\n")
    assert outcome.returncode == 7
    assert out.startswith(b"firstHELLO\nWORLD\n^D")
    assert err == b"err"
    assert outcome.l1_start_s is not None and outcome.l1_start_s > 0


def test_input_without_final_newline_still_ends_with_eof(fake_l1: list[str]) -> None:
    outcome, out, _ = _run(b"no newline")
    # In canonical mode one ^D hands over the unfinished line; the second is the EOF.
    assert out.startswith(b"firstNO NEWLINE^D^D")
    assert outcome.returncode == 7


def test_timeout_stops_l1_with_124(fake_l1: list[str]) -> None:
    fake_l1[0] = "hang"
    started = time.monotonic()
    outcome, _, _ = _run(b"", timeout=1.0)
    assert outcome.returncode == 124 and outcome.timed_out
    assert time.monotonic() - started < 10


def test_l1_dying_without_status_is_an_error_with_the_boot_log(fake_l1: list[str]) -> None:
    fake_l1[0] = "crash"
    with pytest.raises(L1Error) as err:
        _run(b"")
    assert "boot noise" in err.value.log
    assert "QEMU exited with status" in str(err.value)  # how L1 ended is named
    # L1's last words on ttyS0 (its emergencies share the port with the command's output)
    assert "firstKernel panic - not syncing: fake" in err.value.log.replace("\n", "")


def test_no_temporary_directory_is_left_behind(fake_l1: list[str], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", None)
    _run(b"x\n")
    assert list(scratch.iterdir()) == []


def test_tcg_threading_comes_from_the_request_then_the_environment(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def accel(tcg_thread: str | None) -> str:
        cfg = _qemu.L1Config(tmp_path / "k", tmp_path / "i", tmp_path, tmp_path / "s0",
                             tmp_path / "s1", tcg_thread=tcg_thread)
        argv = _qemu.command(cfg)
        return argv[argv.index("-accel") + 1]

    monkeypatch.setattr(_qemu, "qemu_binary", lambda: "qemu")
    monkeypatch.delenv(_qemu.TCG_THREAD_ENV, raising=False)
    assert accel(None) == "tcg,thread=multi"
    assert accel("single") == "tcg,thread=single"
    monkeypatch.setenv(_qemu.TCG_THREAD_ENV, "single")
    assert accel(None) == "tcg,thread=single"
    assert accel("multi") == "tcg,thread=multi"
    with pytest.raises(RigError, match="not one of multi, single"):
        accel("many")
