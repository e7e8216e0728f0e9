"""Each test lane's wall time (setup, call and teardown of its tests), printed at the end of the run, so the
CI budget can be read per lane: a lane is a folder under tests/ (tests/e2e/<subject> for end-to-end tests)."""

from __future__ import annotations

from collections import defaultdict

import pytest

_seconds: defaultdict[str, float] = defaultdict(float)
_tests: defaultdict[str, int] = defaultdict(int)


def lane_of(nodeid: str) -> str:
    """tests/e2e/operator/test_x.py::t -> e2e/operator; tests/unit/test_x.py::t -> unit."""
    parts = nodeid.split("::", 1)[0].split("/")
    if parts and parts[0] == "tests":
        parts = parts[1:]
    folders = parts[:-1]
    if not folders:
        return "(top level)"
    return "/".join(folders[:2]) if folders[0] == "e2e" else folders[0]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    lane = lane_of(report.nodeid)
    _seconds[lane] += report.duration
    if report.when == "call":
        _tests[lane] += 1


def pytest_terminal_summary(terminalreporter) -> None:
    if not _seconds:
        return
    terminalreporter.section("time per lane")
    for lane, seconds in sorted(_seconds.items(), key=lambda item: -item[1]):
        terminalreporter.write_line(f"{seconds:8.1f} s  {_tests[lane]:5d} tests  {lane}")
    terminalreporter.write_line(f"{sum(_seconds.values()):8.1f} s  {sum(_tests.values()):5d} tests  in all")
