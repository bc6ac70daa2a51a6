"""The job and environment files must survive a real shell byte for byte."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ember.rig import _quote

BUSYBOX = "/bin/busybox"
NASTY = [
    b"",
    b"plain",
    b"it's",
    b"''",
    b"a'b'c'",
    b'double " quote',
    b"$HOME `id` $(id) ${x:-y}",
    b"back\\slash\\",
    b"new\nline\n",
    b"tab\tand\rcarriage",
    b"* ? [a-z] ~ # ; & | < > ( ) { }",
    "unicode: é ü ✓".encode(),
    b"\xff\xfe not utf-8",
    b"-n",
    b"!history",
]

DUMP = (
    "import os, sys; "
    "sys.stdout.write(repr((os.getcwd(), sys.argv[1:], dict(os.environb))))"
)


def _sh(script: Path) -> tuple[str, list[str], dict[bytes, bytes]]:
    """Run `script` under busybox sh with an empty environment; return what python saw."""
    out = subprocess.run(
        [BUSYBOX, "sh", str(script)], env={}, capture_output=True, check=True
    ).stdout
    cwd, argv, env = ast.literal_eval(out.decode("utf-8", "surrogateescape"))
    return cwd, argv, env


def test_quote_round_trips_every_nasty_word(tmp_path: Path) -> None:
    script = tmp_path / "words.sh"
    script.write_bytes(b"printf '%s\\0' " + b" ".join(_quote.quote(w) for w in NASTY) + b"\n")
    out = subprocess.run([BUSYBOX, "sh", str(script)], capture_output=True, check=True).stdout
    assert out.split(b"\0")[:-1] == NASTY


def test_env_file_round_trips_through_busybox_sh(tmp_path: Path) -> None:
    env = {b"V%d" % i: value for i, value in enumerate(NASTY)}
    env_file = tmp_path / "env.sh"
    env_file.write_bytes(_quote.env_script(env))
    script = tmp_path / "job.sh"
    argv = [os.fsencode(sys.executable), b"-c", DUMP.encode()]
    script.write_bytes(_quote.job_script(argv, os.fsencode(tmp_path), os.fsencode(env_file)))
    _, _, seen = _sh(script)
    for name, value in env.items():
        assert seen[name] == value


def test_job_script_sets_cwd_and_passes_argv_unchanged(tmp_path: Path) -> None:
    odd_dir = tmp_path / "dir with 'quote' and $dollar"
    odd_dir.mkdir()
    env_file = tmp_path / "env.sh"
    env_file.write_bytes(_quote.env_script({}))
    argv = [os.fsencode(sys.executable), b"-c", DUMP.encode(), *NASTY]
    script = tmp_path / "job.sh"
    script.write_bytes(_quote.job_script(argv, os.fsencode(odd_dir), os.fsencode(env_file)))
    cwd, args, _ = _sh(script)
    assert cwd == str(odd_dir)
    assert [os.fsencode(a) for a in args] == NASTY


def test_job_script_fails_with_125_when_cwd_is_missing(tmp_path: Path) -> None:
    (tmp_path / "env.sh").write_bytes(b"")
    script = tmp_path / "job.sh"
    missing, env_file = os.fsencode(tmp_path / "nope"), os.fsencode(tmp_path / "env.sh")
    script.write_bytes(_quote.job_script([b"true"], missing, env_file))
    assert subprocess.run([BUSYBOX, "sh", str(script)], capture_output=True).returncode == 125


def test_names_a_shell_cannot_export_are_left_out() -> None:
    script = _quote.env_script({b"OK_1": b"x", b"bad-name": b"y", b"1BAD": b"z", b"a.b": b"w"})
    assert script == b"export OK_1='x'\n"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (b"/root/.pyenv/shims:/usr/bin", b"/usr/bin"),
        (b"/a/.venv/bin:/root/.pyenv/shims:/bin", b"/a/.venv/bin:/bin"),
        (b"/root/.pyenv/plugins/pyenv-virtualenv/shims:/root/.pyenv/bin:/bin",
         b"/root/.pyenv/bin:/bin"),
        (b"/usr/local/bin:/usr/bin", b"/usr/local/bin:/usr/bin"),
        (b"/home/x/shims:/bin", b"/home/x/shims:/bin"),
    ],
)
def test_path_loses_pyenv_shims_only(path: bytes, expected: bytes) -> None:
    assert _quote.sanitize_path(path) == expected
    assert _quote.env_script({b"PATH": path}) == b"export PATH=" + _quote.quote(expected) + b"\n"


def test_empty_command_is_refused() -> None:
    with pytest.raises(ValueError):
        _quote.command_line([])
