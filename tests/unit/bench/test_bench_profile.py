from pathlib import Path

from bench import profile

RAW = """\
thread (0x1);main (cli.py:10);run (vcpu.py:20);handle_io (bus.py:30) 6
thread (0x1);main (cli.py:10);run (vcpu.py:20) 2
thread (0x2);serve (server.py:5);recv (server.py:9) 2
garbage line
"""


def test_summarize_counts_self_and_inclusive_time() -> None:
    summary = profile.summarize(RAW.splitlines())
    assert summary.total == 10
    assert summary.self_counts["handle_io (bus.py:30)"] == 6
    assert summary.self_counts["run (vcpu.py:20)"] == 2
    assert summary.inclusive["run (vcpu.py:20)"] == 8
    assert summary.inclusive["main (cli.py:10)"] == 8
    assert not any(k.startswith("thread (") for k in summary.inclusive)


def test_report_lists_the_hottest_first() -> None:
    text = profile.report(profile.summarize(RAW.splitlines()), n=2, heading="h")
    lines = text.splitlines()
    assert lines[0] == "h"
    self_block = lines[lines.index("self time (leaf frame):") + 1]
    assert self_block.split() == ["60.0%", "6", "handle_io", "(bus.py:30)"]
    assert profile.report(profile.summarize([]), heading="h") == "h\nno samples\n"


def test_prefix_runs_the_program_under_py_spy() -> None:
    argv = profile.prefix("py-spy", Path("/tmp/out"))
    assert argv[:2] == ["py-spy", "record"] and argv[-1] == "--"
    assert "--native" in profile.prefix("py-spy", Path("/tmp/out"), native=True)
