import json

from bench.stats import EMBER, QEMU, Metric, Table, format_table, ratio


def test_median_and_ratio_of_a_row() -> None:
    m = Metric("boot", "ms")
    for e, q in [(30.0, 10.0), (10.0, 20.0), (20.0, 5.0)]:
        m.add(EMBER, e)
        m.add(QEMU, q)
    row = m.row()
    assert row["ember"] == 20.0 and row["qemu"] == 10.0
    assert row["ratio"] == 2.0
    assert row["runs"] == 3


def test_even_count_median_averages_the_middle_pair() -> None:
    m = Metric("x", "ms")
    for v in (1.0, 2.0, 3.0, 10.0):
        m.add(EMBER, v)
    assert m.median(EMBER) == 2.5


def test_one_sided_rows_have_no_ratio() -> None:
    m = Metric("exits", "exits")
    m.add(EMBER, 100)
    m.add(QEMU, None)
    row = m.row()
    assert row["qemu"] is None and row["ratio"] is None and row["runs"] == 1


def test_ratio_guards() -> None:
    assert ratio(None, 1.0) is None
    assert ratio(1.0, 0.0) is None
    assert ratio(3.0, 2.0) == 1.5


def test_table_keeps_first_seen_order_and_notes() -> None:
    t = Table()
    t.add("b", "ms", EMBER, 1.0, note="first")
    t.add("a", "ms", QEMU, 2.0)
    t.add("b", "ms", QEMU, 4.0)
    rows = t.rows()
    assert [r["metric"] for r in rows] == ["b", "a"]
    assert rows[0]["note"] == "first" and rows[0]["ratio"] == 0.25


def test_format_table_aligns_columns_and_adds_the_footer() -> None:
    t = Table()
    t.add("boot e2e", "ms", EMBER, 12345.6)
    t.add("boot e2e", "ms", QEMU, 6000.0)
    t.add("exits", "exits", EMBER, 7.0)
    text = format_table(t.rows(), ["footer line"])
    lines = text.splitlines()
    assert lines[0].startswith("metric")
    assert set(lines[1]) == {"-"}
    assert "12,346" in lines[2] and "6,000" in lines[2] and "2.06" in lines[2]
    assert lines[3].split()[-3:] == ["-", "-", "1"]
    assert lines[-1] == "footer line"
    assert len({len(line) for line in lines[:4]}) <= 2


def test_tables_merge_across_sessions() -> None:
    first, second = Table(), Table()
    first.add("boot", "ms", EMBER, 1.0)
    first.add("boot", "ms", QEMU, 2.0)
    second.add("boot", "ms", EMBER, 3.0)
    second.add("rss", "MiB", QEMU, 9.0, note="n")
    merged = Table()
    for table in (first, second):
        merged.merge_json(json.loads(json.dumps(table.to_json())))
    merged.merge_json({"bad": 1, "worse": {"samples": {"ember": ["x", None]}}})
    rows = {r["metric"]: r for r in merged.rows()}
    assert rows["boot"]["ember"] == 2.0 and rows["boot"]["runs"] == 1
    assert rows["rss"]["qemu"] == 9.0 and rows["rss"]["note"] == "n"
    assert rows["worse"]["runs"] == 0
