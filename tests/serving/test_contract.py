"""serving-image/README.md is the contract: parse its tables and check the server honours every row."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from modelserve.settings import Settings

from .helpers import iris_env, run_to_exit, start_server

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
    assert f"{flag} VALUE" in serve_help and f"env {variable} " in serve_help


def test_contract_constants_are_the_defaults():
    text = README.read_text()
    assert "One port, **8080**" in text and Settings.model_fields["port"].default == 8080
    mounts = {unquote(row[0]) for row in MOUNT_ROWS}
    assert Settings.model_fields["api_keys_file"].default in mounts
    assert Settings.model_fields["termination_message_path"].default in mounts
    assert "/models" in mounts and "/tmp" in mounts


@pytest.fixture(scope="module")
def contract_server(tmp_path_factory, iris_joblib):
    server = start_server(tmp_path_factory.mktemp("contract"), iris_env(iris_joblib))
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
    resp = contract_server.client.request(method, path, json=body if method == "POST" else None)
    assert resp.status_code == 200, resp.text


def test_exit_code_table_is_complete():
    assert [row[0] for row in EXIT_ROWS] == ["0", "1", "2", "3", "4"]


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
