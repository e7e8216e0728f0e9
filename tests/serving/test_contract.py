"""serving-image/README.md is the contract: parse its tables and check the server honours every row."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from harness.serving import iris_env, run_to_exit, start_server, wait_for_status
from modelserve.settings import Settings

README = Path(__file__).resolve().parents[2] / "serving-image" / "README.md"


def table_after(heading: str) -> list[list[str]]:
    """Rows (cells without backticks) of the first Markdown table after `heading`."""
    text = README.read_text()
    start = text.index(f"\n{heading}\n")
    rows: list[list[str]] = []
    for line in text[start:].splitlines()[1:]:
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not all(set(c) <= {"-", " "} for c in cells):
                rows.append(cells)
        elif rows:
            break
    return rows[1:]  # without the header row


def unquote(cell: str) -> str:
    match = re.fullmatch(r"`([^`]*)`", cell)
    return match.group(1) if match else cell


ENV_ROWS = table_after("## Environment variables")
PATH_ROWS = table_after("## Paths")
EXIT_ROWS = table_after("## Exit codes")
MOUNT_ROWS = table_after("## Mounted paths")
HEADER_ROWS = table_after("## Response headers")


def readme_default(cell: str) -> str:
    value = unquote(cell)
    return "" if value == '""' else value


def settings_default(name: str) -> str:
    default = Settings.model_fields[name].default
    return str(default).lower() if isinstance(default, bool) else str(default)


def test_env_table_lists_every_setting_exactly_once():
    documented = [unquote(row[0]) for row in ENV_ROWS]
    assert len(documented) == len(set(documented))
    assert set(documented) == {f"MODELSERVE_{name.upper()}" for name in Settings.model_fields}


@pytest.fixture(scope="module")
def serve_help() -> str:
    command = [sys.executable, "-m", "modelserve", "serve", "--help"]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("row", ENV_ROWS, ids=[unquote(r[0]) for r in ENV_ROWS])
def test_env_row_flag_and_default_match_the_settings(row, serve_help):
    variable, flag, default = unquote(row[0]), unquote(row[1]), row[2]
    name = variable.removeprefix("MODELSERVE_").lower()
    assert flag == f"--{name.replace('_', '-')}"
    assert readme_default(default) == settings_default(name)
    assert f"{flag} VALUE" in serve_help and re.search(rf"env {variable}\s", serve_help)  # may wrap


def test_contract_constants_are_the_defaults():
    text = README.read_text()
    assert "One port, **8080**" in text and Settings.model_fields["port"].default == 8080
    mounts = {unquote(row[0]) for row in MOUNT_ROWS}
    assert Settings.model_fields["api_keys_file"].default in mounts
    assert Settings.model_fields["termination_message_path"].default in mounts
    assert "/models" in mounts and "/tmp" in mounts


@pytest.fixture(scope="module", params=["true", "false"], ids=["bypass", "no-bypass"])
def framework_bypass(request) -> str:
    """The contract holds with modelserve.bypass on (the default) and off (MODELSERVE_FRAMEWORK_BYPASS)."""
    return request.param


@pytest.fixture(scope="module")
def contract_server(tmp_path_factory, iris_joblib, framework_bypass):
    env = iris_env(
        iris_joblib, MODELSERVE_MAX_BODY_BYTES="4096", MODELSERVE_FRAMEWORK_BYPASS=framework_bypass
    )
    server = start_server(tmp_path_factory.mktemp("contract"), env)
    ready = next(r for r in server.log_lines() if r.get("event") == "ready")
    assert ready["framework_bypass"] is (framework_bypass == "true")  # the switch is really in this position
    yield server
    server.stop()


@pytest.mark.parametrize("row", PATH_ROWS, ids=[unquote(r[0]) for r in PATH_ROWS])
def test_every_documented_path_answers(contract_server, row):
    path = unquote(row[0]).replace("{name}", "iris").replace("{version}", "3")
    method = row[1]
    body = {"instances": [[5.1, 3.5, 1.4, 0.2]]}
    if path == "/predict":
        body = [{"feature_0": 5.1, "feature_1": 3.5, "feature_2": 1.4, "feature_3": 0.2}]
    elif "/v2/" in path and method == "POST":
        body = {
            "inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]
        }
    if path.endswith("/feedback"):
        answer = contract_server.client.post(
            "/v1/models/iris:predict", json={"instances": [[5.1, 3.5, 1.4, 0.2]]}
        )
        body = {"id": answer.headers["x-prediction-id"], "label": 0}
    resp = contract_server.client.request(method, path, json=body if method == "POST" else None)
    assert resp.status_code == 200, resp.text
    assert_identity(resp)


def identity_of(env: dict[str, str]) -> dict[str, str]:
    """The headers documented "on every response", with the value of the variable each one names."""
    expected = {}
    for row in HEADER_ROWS:
        if row[1] == "every response":
            variable = re.match(r"`(MODELSERVE_\w+)`", row[2])
            assert variable, f"{row[0]}: the Value cell must start with the variable it echoes"
            expected[unquote(row[0])] = env[variable.group(1)]
    return expected


IDENTITY = identity_of(iris_env(Path("model.joblib")))


def assert_identity(resp) -> None:
    assert {name: resp.headers.get(name) for name in IDENTITY} == IDENTITY, (resp.status_code, resp.text)


def test_identity_headers_are_documented_with_the_settings_they_echo():
    assert set(IDENTITY) == {"X-Model-Color", "X-Model-Revision"}
    assert IDENTITY == {"X-Model-Color": "blue", "X-Model-Revision": "7c9f1e2"}  # iris_env's values


V1 = "/v1/models/iris:predict"
ROW = {"instances": [[5.1, 3.5, 1.4, 0.2]]}


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", V1, b"{not json", 400),
        ("POST", V1, b'{"instances": [[1, 2]]}', 400),
        ("POST", "/v1/models/wine:predict", b"{}", 404),
        ("GET", "/v2/models/wine", None, 404),
        ("GET", "/nowhere", None, 404),
        ("GET", "/predict", None, 405),
        ("DELETE", "/v2/health/ready", None, 405),
        ("POST", V1, b"[" + b"1.0," * 2000 + b"1]", 413),
    ],
)
def test_error_responses_carry_the_identity_headers(contract_server, method, path, body, status):
    resp = contract_server.client.request(method, path, content=body)
    assert resp.status_code == status, resp.text
    assert_identity(resp)


@pytest.fixture
def limited_server(tmp_path, iris_joblib, framework_bypass):
    keys = tmp_path / "api-keys"
    keys.write_text("contract-key\n")
    env = iris_env(
        iris_joblib,
        MODELSERVE_API_KEYS_FILE=str(keys),
        MODELSERVE_RATE_LIMIT_RPS="0.001",
        MODELSERVE_RATE_LIMIT_BURST="1",
        MODELSERVE_DRAIN_SECONDS="600",  # stays draining (readiness 503) until the test kills it
        MODELSERVE_FRAMEWORK_BYPASS=framework_bypass,
    )
    server = start_server(tmp_path, env)
    yield server
    server.process.kill()
    server.stop()


def test_401_429_and_draining_503_carry_the_identity_headers(limited_server):
    client = limited_server.client
    key = {"X-API-Key": "contract-key"}
    unauthorised = client.post(V1, json=ROW)
    first, limited = client.post(V1, json=ROW, headers=key), client.post(V1, json=ROW, headers=key)
    assert (unauthorised.status_code, first.status_code, limited.status_code) == (401, 200, 429)
    assert int(limited.headers["retry-after"]) > 0
    limited_server.process.send_signal(signal.SIGTERM)
    draining = wait_for_status(client, "/v2/health/ready", 503)
    for resp in (unauthorised, first, limited, draining):
        assert_identity(resp)


def test_exit_code_table_is_complete():
    assert [row[0] for row in EXIT_ROWS] == ["0", "1", "2", "3", "4", "5"]


def test_exit_0_on_sigterm(tmp_path, iris_joblib):
    server = start_server(tmp_path, iris_env(iris_joblib))
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(30) == 0


def test_exit_1_writes_the_reason_to_the_termination_file(tmp_path):
    code, stderr, termination = run_to_exit(
        tmp_path, {"MODELSERVE_MODEL_PATH": str(tmp_path / "absent.onnx")}
    )
    assert code == 1
    line = f"model load failed: model path {tmp_path / 'absent.onnx'} does not exist (MODELSERVE_MODEL_PATH)"
    assert termination == line + "\n"
    assert stderr.strip() == line


def test_exit_2_on_bad_configuration_and_on_a_busy_port(tmp_path, iris_joblib, contract_server):
    code, _, termination = run_to_exit(tmp_path, {"MODELSERVE_PORT": "99999"})
    assert code == 2 and termination.startswith("bad configuration: MODELSERVE_PORT (--port)")
    busy = iris_env(iris_joblib, MODELSERVE_PORT=str(contract_server.port))
    server = start_server(tmp_path, busy, wait=False)
    server.port = contract_server.port
    assert server.process.wait(90) == 2


def test_fetch_exit_3_and_4(tmp_path):
    src = tmp_path / "model.onnx"
    src.write_bytes(b"model bytes")
    fetch = [sys.executable, "-m", "modelserve", "fetch"]
    mismatch = subprocess.run(
        [*fetch, str(src), str(tmp_path / "out"), "--sha256", "0" * 64], capture_output=True
    )
    assert mismatch.returncode == 3
    missing = subprocess.run(
        [*fetch, str(tmp_path / "nope.onnx"), str(tmp_path / "out")], capture_output=True
    )
    assert missing.returncode == 4
