"""Profiling one ember boot with py-spy, and a plain-text summary of its samples.

py-spy's `--format raw` output is one line per distinct stack: frames from the root to
the leaf, separated by `;`, then a space and the number of samples.
"""

from __future__ import annotations

import shutil
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PY_SPY = Path(sys.executable).parent / "py-spy"
# Low: in the rig the sampler itself runs under emulation and falls behind at 100 Hz.
RATE_HZ = 20


@dataclass(frozen=True)
class Summary:
    total: int
    self_counts: Counter[str]
    inclusive: Counter[str]


def py_spy() -> str | None:
    found = PY_SPY if PY_SPY.exists() else shutil.which("py-spy")
    return str(found) if found else None


def prefix(binary: str, out: Path, native: bool = False) -> list[str]:
    """The command line that runs a program under py-spy (all threads, raw stacks)."""
    argv = [binary, "record", "--format", "raw", "--rate", str(RATE_HZ), "--threads",
            "--nonblocking", "--output", str(out)]
    return [*argv, "--native", "--"] if native else [*argv, "--"]


def summarize(lines: Iterable[str]) -> Summary:
    self_counts: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in lines:
        stack, _, count_text = line.rstrip().rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if not f.startswith(("thread (", "process "))]
        if not frames:
            continue
        total += count
        self_counts[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    return Summary(total, self_counts, inclusive)


def _top(title: str, counts: Counter[str], total: int, n: int) -> list[str]:
    lines = [title]
    for frame, count in counts.most_common(n):
        lines.append(f"{100 * count / total:6.1f}%  {count:6d}  {frame}")
    return lines


def report(summary: Summary, n: int = 25, heading: str = "") -> str:
    if summary.total == 0:
        return f"{heading}\nno samples\n"
    lines = [heading, f"{summary.total} samples at {RATE_HZ} Hz, all threads", ""]
    lines += _top("self time (leaf frame):", summary.self_counts, summary.total, n)
    lines += ["", *_top("total time (frame anywhere on the stack):", summary.inclusive,
                        summary.total, n)]
    return "\n".join(lines) + "\n"
