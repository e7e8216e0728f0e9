"""The lane a test's time is counted under in the run's time-per-lane summary."""

from __future__ import annotations

import pytest

from harness.lanes import lane_of


@pytest.mark.parametrize(
    ("nodeid", "lane"),
    [
        ("tests/unit/test_spec.py::test_x", "unit"),
        ("tests/e2e/operator/test_operator_faults.py::test_y[a]", "e2e/operator"),
        ("tests/e2e/realnode/test_realnode_releases.py::test_z", "e2e/realnode"),
        ("tests/serving/test_grpc.py::test_w", "serving"),
        ("tests/test_top.py::test_v", "(top level)"),
        ("unit/test_spec.py::test_x", "unit"),  # run from inside tests/
    ],
)
def test_a_test_counts_under_its_folder_and_e2e_tests_under_their_subject(nodeid, lane):
    assert lane_of(nodeid) == lane
