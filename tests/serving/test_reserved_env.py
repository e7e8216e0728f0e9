"""modelserve reads only the documented upper-case MODELSERVE_* names: one in another letter case (which
pydantic-settings would read, case-insensitively, over the documented one) is refused at start-up with a
clear error, and the documented names keep working with one worker and with two."""

from __future__ import annotations

import pytest

from harness.serving import iris_env, run_to_exit, start_server
from modelserve.settings import misspelt_settings

V1 = "/v1/models/iris:predict"
BODY = {"instances": [[5.1, 3.5, 1.4, 0.2]]}


def test_misspelt_names_are_found_and_documented_ones_are_not():
    environ = {
        "MODELSERVE_PORT": "1",
        "modelserve_api_keys_file": "/x",
        "Modelserve_Workers": "2",
        "PATH": "/",
    }
    assert misspelt_settings(environ) == ["Modelserve_Workers", "modelserve_api_keys_file"]


@pytest.mark.parametrize("name", ["modelserve_api_keys_file", "MODELSERVE_api_keys_file"])
def test_a_lower_case_setting_is_refused_at_start_up(tmp_path, iris_joblib, name):
    # Before: the lower-case name won over MODELSERVE_API_KEYS_FILE and turned API-key auth off.
    env = iris_env(iris_joblib, MODELSERVE_API_KEYS_FILE=str(tmp_path / "keys"), **{name: "/nonexistent"})
    code, stderr, termination = run_to_exit(tmp_path, env)
    assert code == 2, stderr
    assert f"{name}: modelserve reads only upper-case MODELSERVE_* variables" in stderr
    assert name in termination


@pytest.mark.parametrize("workers", ["1", "2"])
def test_documented_names_work_with_one_worker_and_two(tmp_path, iris_joblib, workers):
    keys = tmp_path / "api-keys"
    keys.write_text("team-key-1\n")
    env = iris_env(iris_joblib, MODELSERVE_API_KEYS_FILE=str(keys), MODELSERVE_WORKERS=workers)
    server = start_server(tmp_path / "srv", env)
    try:
        assert server.client.post(V1, json=BODY).status_code == 401
        answer = server.client.post(V1, json=BODY, headers={"Authorization": "Bearer team-key-1"})
        assert answer.status_code == 200, answer.text
    finally:
        server.stop()
