from bench import block, parse


def test_timed_dd_mark() -> None:
    timed = parse.timed_dd("10.50 12.50 64+0 records out")
    assert timed == parse.TimedDd(10.5, 12.5, 64, 0)
    assert timed.seconds == 2.0
    assert timed.rate(1 << 20) == 32 * (1 << 20)


def test_timed_dd_counts_partial_records_apart() -> None:
    timed = parse.timed_dd("1.00 2.00 3+1 records out")
    assert timed is not None and (timed.full, timed.partial) == (3, 1)
    assert timed.rate(10) == 30.0


def test_timed_dd_failures() -> None:
    assert parse.timed_dd("1.00 2.00 dd: can't open '/dev/vdz': No such file") is None
    assert parse.timed_dd("1.00 2.00") is None
    too_quick = parse.timed_dd("5.00 5.00 1+0 records out")
    assert too_quick is not None and too_quick.rate(4096) is None


def test_boot_time_and_exits_from_ember_log() -> None:
    log = ("2026-01-01T00:00:00 [anonymous-instance:main] Guest-boot-time =  812345 us 812 ms,"
           "  90123 CPU us 90 CPU ms\n"
           "x [anonymous-instance:main] Vmm is stopping with exit code 0. vCPU exits: "
           "hlt=12, io=3456, mmio=78\n")
    assert parse.boot_time_us(log) == (812345, 90123)
    assert parse.exit_counts(log) == {"hlt": 12, "io": 3456, "mmio": 78}
    assert parse.exit_counts("vCPU exits: none") == {}
    assert parse.boot_time_us("") is None


def test_marks_and_uptime() -> None:
    console = "noise\r\nBENCH-READY \nBENCH-RAND 8 10.50 12.50\r\n[ 1.0] BENCH-WRITE x\n"
    marks = parse.marks(console)
    assert marks["RAND"] == ["8 10.50 12.50"]
    assert marks["WRITE"] == ["x"]
    assert parse.uptime("12.34 5.67\n") == 12.34


def test_block_sample_from_a_console() -> None:
    console = "\n".join([
        "EMBER-GUEST-INIT nproc=2",
        "BENCH-READY",
        "BENCH-WRITE 10.00 10.50 8+0 records out",
        "BENCH-READ 11.00 11.25 8+0 records out",
        "BENCH-QD1 12.00 13.00 256+0 records out",
        "BENCH-RAND 13.00 15.00 8+0 records out",
    ])
    result = block.sample(console)
    assert result.write_mb_s == 8 * (1 << 20) / 0.5 / 1e6
    assert result.read_mb_s == 8 * (1 << 20) / 0.25 / 1e6
    assert result.qd1_iops == 256.0
    assert result.rand_iops == 4.0
    assert block.sample("BENCH-READY").read_mb_s is None


def test_block_script_fills_its_area_and_ends_with_a_reboot() -> None:
    plan = block.BlockPlan(data_mib=8, random_reads=8, qd1_reads=256)
    script = plan.script()
    assert len(script) == block.SCRIPT_AREA
    text = script.rstrip(b"\0").decode()
    assert "reboot -f" in text and "RANDOM % 2048" in text
    assert plan.random_span() == 2048
    assert block.BlockPlan(data_mib=1024, random_reads=1, qd1_reads=1).random_span() == 32768


def test_problems_are_the_lines_that_report_a_failure() -> None:
    log = ("2026-11-27T03:27:22 [i:main] Successfully started microvm.\n"
           "2026-11-27T03:27:23 [i:Thread-1] ending the VM: stopping the device thread failed\n"
           "2026-11-27T03:27:23 [i:Thread-1] event loop wake-up fd 9: [Errno 9] Bad file "
           "descriptor; open fds: 0=/dev/null 1=pipe:[7]\n")
    found = parse.problems(log)
    assert len(found) == 2 and "device thread failed" in found[0] and "open fds" in found[1]
    assert parse.problems("2026-11-27T03:27:22 [i:main] Running ember v0.1.0\n") == []
