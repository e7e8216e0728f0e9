"""The release lanes' load client against real local HTTP servers: its counting rule, colours and bounds."""

import json
import signal
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from harness.scripts import load_script

CLIENT = Path(__file__).resolve().parents[1] / "loadclient" / "loadclient.py"
loadclient = load_script(CLIENT)


class _Handler(BaseHTTPRequestHandler):
    """Answers by path: /ok (alternating colours), /503, /429, /404, /slow (past the client's deadline)."""

    protocol_version = "HTTP/1.1"
    served = 0
    connections: set = set()
    lock = threading.Lock()

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with self.lock:
            type(self).served += 1
            type(self).connections.add(self.client_address)
            n = type(self).served
        status = {"/ok": 200, "/503": 503, "/429": 429, "/404": 404}.get(self.path, 200)
        if self.path == "/slow":
            threading.Event().wait(1.0)
        body = b'{"outputs": []}'
        self.send_response(status)
        self.send_header("X-Model-Color", "blue" if n % 2 else "green")
        self.send_header("X-Model-Revision", "rev1" if n % 2 else "rev2")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(url: str, *extra: str) -> tuple[dict, list[dict]]:
    out = subprocess.run(
        [sys.executable, str(CLIENT), "--url", url, "--body", '{"x": 1}', *extra],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    lines = [json.loads(line) for line in out.splitlines()]
    return lines[-1]["summary"], [line["bucket"] for line in lines if "bucket" in line]


@pytest.mark.parametrize(
    ("path", "ok", "failed", "unexpected", "reason"),
    [
        ("/ok", 40, 0, 0, None),
        ("/503", 0, 40, 0, "http_503"),
        ("/429", 0, 40, 0, "http_429"),
        ("/404", 0, 0, 40, "http_404"),
    ],
)
def test_answers_are_counted_by_the_failure_rule(server, path, ok, failed, unexpected, reason):
    summary, _ = _run(server + path, "--rate", "40", "--duration", "1")
    counts = (summary["sent"], summary["ok"], summary["failed"], summary["unexpected"])
    assert counts == (40, ok, failed, unexpected)
    assert summary["reasons"] == ({reason: 40} if reason else {})


def test_every_request_uses_a_new_connection_and_records_its_colour(server):
    _Handler.connections.clear()
    summary, buckets = _run(server + "/ok", "--rate", "50", "--duration", "2", "--bucket", "0.5")
    assert summary["ok"] == 100
    assert len(_Handler.connections) == 100  # one client port per request: no keep-alive
    assert summary["colors"] == {"blue": 50, "green": 50}
    assert set(summary["first_answer_at"]) == {"blue/rev1", "green/rev2"}
    assert sum(b["ok"] for b in buckets) == 100 and len(buckets) == 4


def test_refused_connections_and_timeouts_are_failures_without_retries(server):
    refused, _ = _run(f"http://127.0.0.1:{_closed_port()}/ok", "--rate", "20", "--duration", "1")
    assert (refused["failed"], refused["reasons"]) == (20, {"connect": 20})
    served_before = _Handler.served
    slow, _ = _run(server + "/slow", "--rate", "5", "--duration", "1", "--timeout", "0.3")
    assert (slow["failed"], slow["reasons"]) == (5, {"timeout": 5})
    assert _Handler.served - served_before <= 5  # never retried


def test_runs_are_bounded_in_count_and_time(server):
    summary, _ = _run(server + "/ok", "--rate", "100", "--duration", "5", "--max-requests", "30")
    assert summary["sent"] == 30
    with pytest.raises(subprocess.CalledProcessError):
        _run(server + "/ok", "--duration", "601")


def test_sigterm_ends_the_run_early_with_the_summary_of_what_was_sent(server):
    proc = subprocess.Popen(
        [
            sys.executable,
            str(CLIENT),
            "--url",
            server + "/ok",
            "--body",
            "{}",
            "--rate",
            "20",
            "--duration",
            "60",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert "bucket" in json.loads(proc.stdout.readline())  # running, its handler in place
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=10)
    summary = json.loads(out.splitlines()[-1])["summary"]
    assert proc.returncode == 0
    assert 20 <= summary["sent"] < 20 * 30 and summary["ok"] == summary["sent"], summary


@pytest.mark.parametrize(
    ("status", "error", "expected"),
    [
        (200, None, "ok"),
        (204, None, "ok"),
        (500, None, "failed"),
        (503, None, "failed"),
        (429, None, "failed"),
        (404, None, "unexpected"),
        (None, "reset", "failed"),
        (None, "timeout", "failed"),
        (200, "reset", "failed"),
    ],
)
def test_outcome_rule(status, error, expected):
    assert loadclient.outcome(status, error) == expected


def test_url_must_be_plain_http():
    with pytest.raises(ValueError, match="http://host"):
        loadclient.parse_target("https://example/x")
    assert loadclient.parse_target("http://svc.ns.svc/v2/models/m/infer?x=1") == loadclient.Target(
        "svc.ns.svc", 80, "/v2/models/m/infer?x=1"
    )
