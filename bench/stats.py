"""Samples, medians and the results table: pure functions, no I/O."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

EMBER = "ember"
QEMU = "qemu"


@dataclass
class Metric:
    """One line of the table: the samples each VMM gave for one quantity."""

    name: str
    unit: str
    samples: dict[str, list[float]] = field(default_factory=dict)
    note: str = ""

    def add(self, vmm: str, value: float | None) -> None:
        if value is not None:
            self.samples.setdefault(vmm, []).append(value)

    def median(self, vmm: str) -> float | None:
        values = self.samples.get(vmm, [])
        return statistics.median(values) if values else None

    def runs(self) -> int:
        """How many samples the row's medians rest on (the smaller side when both have some)."""
        counts = [len(v) for v in self.samples.values() if v]
        return min(counts) if counts else 0

    def row(self) -> dict[str, object]:
        ember, qemu = self.median(EMBER), self.median(QEMU)
        row: dict[str, object] = {"metric": self.name, "unit": self.unit, "ember": ember,
                                  "qemu": qemu, "ratio": ratio(ember, qemu), "runs": self.runs()}
        if self.note:
            row["note"] = self.note
        return row


def ratio(ember: float | None, qemu: float | None) -> float | None:
    """ember / QEMU, or None where either side is missing or QEMU's is zero."""
    if ember is None or qemu is None or qemu == 0:
        return None
    return ember / qemu


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"
    return str(value)


def format_table(rows: Sequence[dict[str, object]], footer: Iterable[str] = ()) -> str:
    """A fixed-width text table of result rows, then the footer lines."""
    header = ("metric", "unit", "ember", "qemu", "ember/qemu", "runs")
    keys = ("metric", "unit", "ember", "qemu", "ratio", "runs")
    cells = [header] + [tuple(_cell(r.get(k)) for k in keys) for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(header))]
    lines = []
    for n, line in enumerate(cells):
        first, rest = line[0].ljust(widths[0]), line[1].ljust(widths[1])
        numbers = "  ".join(c.rjust(w) for c, w in zip(line[2:], widths[2:], strict=True))
        lines.append(f"{first}  {rest}  {numbers}")
        if n == 0:
            lines.append("-" * len(lines[0]))
    return "\n".join([*lines, *footer]) + "\n"


class Table:
    """Metrics in the order they were first named."""

    def __init__(self) -> None:
        self.metrics: dict[str, Metric] = {}

    def metric(self, name: str, unit: str, note: str = "") -> Metric:
        if name not in self.metrics:
            self.metrics[name] = Metric(name, unit, note=note)
        return self.metrics[name]

    def add(self, name: str, unit: str, vmm: str, value: float | None, note: str = "") -> None:
        self.metric(name, unit, note).add(vmm, value)

    def rows(self) -> list[dict[str, object]]:
        return [m.row() for m in self.metrics.values()]

    def to_json(self) -> dict[str, dict[str, object]]:
        """Every sample, to carry a table across processes (see merge_json)."""
        return {m.name: {"unit": m.unit, "note": m.note, "samples": m.samples}
                for m in self.metrics.values()}

    def merge_json(self, data: object) -> None:
        """Add the samples of a to_json() dict (ignores anything malformed)."""
        if not isinstance(data, dict):
            return
        for name, entry in data.items():
            if not isinstance(entry, dict) or not isinstance(entry.get("samples"), dict):
                continue
            metric = self.metric(str(name), str(entry.get("unit", "")), str(entry.get("note", "")))
            for vmm, values in entry["samples"].items():
                for value in values if isinstance(values, list) else []:
                    if isinstance(value, int | float):
                        metric.add(str(vmm), float(value))
