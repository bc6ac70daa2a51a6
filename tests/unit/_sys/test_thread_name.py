"""OS thread names (ember._sys.thread), read back from /proc as ps and top see them."""

import threading
from pathlib import Path

from ember._sys.thread import name_this_thread


def _os_name_in_thread(python_name: str, given: str | None) -> str:
    seen: list[str] = []

    def run() -> None:
        assert name_this_thread(given)
        seen.append(Path(f"/proc/self/task/{threading.get_native_id()}/comm").read_text())

    thread = threading.Thread(target=run, name=python_name)
    thread.start()
    thread.join(5)
    return seen[0].rstrip("\n")


def test_the_python_name_becomes_the_os_name() -> None:
    assert _os_name_in_thread("fc_vcpu 3", None) == "fc_vcpu 3"


def test_long_names_are_cut_to_the_kernels_15_bytes() -> None:
    assert _os_name_in_thread("t", "fc_vcpu 31 and more") == "fc_vcpu 31 and "
