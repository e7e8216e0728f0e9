"""The load client (`tests/loadclient/loadclient.py`) as a process on this machine, the real node's host,
sending to a Service's ClusterIP through kube-proxy's rules, with every request kept (`--records`).

Benchmarks use it where one-second buckets are too coarse: a release's cutover is read per request.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from harness.realnode.load_pods import LOADCLIENT, parse_load_log

MAX_DURATION = 600  # the client's own bound


@dataclass
class HostLoad:
    process: subprocess.Popen
    records_path: Path
    log_path: Path

    def finish(self, timeout: float = 30) -> tuple[dict, list[dict]]:
        """Stops sending (SIGTERM: the requests in flight finish), waits; returns the summary and records."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=timeout)
        log = self.log_path.read_text()
        if self.process.returncode != 0:
            raise AssertionError(f"load client exited {self.process.returncode}:\n{log[-3000:]}")
        records = [json.loads(line) for line in self.records_path.read_text().splitlines() if line]
        return parse_load_log(log).summary, records


def start_host_load(
    url: str, body: dict, *, rate: float, duration: float, workdir: Path, name: str
) -> HostLoad:
    """Starts a bounded constant-rate run (new connection per request, no retries, 2 s timeout)."""
    workdir.mkdir(parents=True, exist_ok=True)
    body_file = workdir / f"{name}-body.json"
    body_file.write_text(json.dumps(body))
    records, log = workdir / f"{name}-records.jsonl", workdir / f"{name}.log"
    command = [sys.executable, str(LOADCLIENT), "--url", url, "--body-file", str(body_file),
               "--rate", str(rate), "--duration", str(min(duration, MAX_DURATION)), "--timeout", "2",
               "--records", str(records)]  # fmt: skip
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    return HostLoad(process, records, log)
