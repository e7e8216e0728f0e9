"""Requests sent straight to a new serving pod's IP from the moment it has one, until it is ready.

The real node is this machine, so the test process reaches pod IPs over `cni0`. Each round sends a
prediction and asks `/v2/health/ready`, each on a new connection; the verdict is a pure function of them.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass


@dataclass(frozen=True)
class Attempt:
    at: float  # monotonic seconds, when it was sent
    end: float  # when its answer (or error) came
    path: str  # "infer" or "ready"
    outcome: str  # "refused", "503", "200", "timeout", "http_<n>", "other"


def attempt(path: str, url: str, body: bytes | None) -> Attempt:
    started = time.monotonic()
    outcome = send(url, body)
    return Attempt(started, time.monotonic(), path, outcome)


def send(url: str, body: bytes | None) -> str:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=1) as reply:
            return str(reply.status)
    except urllib.error.HTTPError as error:
        return "503" if error.code == 503 else f"http_{error.code}"
    except ConnectionRefusedError:
        return "refused"
    except urllib.error.URLError as error:
        reason = error.reason
        if isinstance(reason, ConnectionRefusedError):
            return "refused"
        return "timeout" if isinstance(reason, TimeoutError) else "other"
    except TimeoutError:
        return "timeout"
    except OSError:
        return "other"


def probe_until_ready(ip: str, port: int, model: str, body: dict, timeout: float = 180) -> list[Attempt]:
    """Infer and ready requests to ip:port, every 0.1 s, until ready answers 200 and one more infer after."""
    base = f"http://{ip}:{port}"
    data = json.dumps(body).encode()
    attempts: list[Attempt] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        attempts.append(attempt("infer", f"{base}/v2/models/{model}/infer", data))
        attempts.append(attempt("ready", f"{base}/v2/health/ready", None))
        if attempts[-1].outcome == "200":
            attempts.append(attempt("infer", f"{base}/v2/models/{model}/infer", data))
            return attempts
        time.sleep(0.1)
    raise AssertionError(f"{base} not ready within {timeout}s; last: {attempts[-4:]}")


def last_not_ready(attempts: list[Attempt]) -> float:
    """When the last `/v2/health/ready` that did not answer 200 was sent."""
    return max((a.at for a in attempts if a.path == "ready" and a.outcome != "200"), default=float("-inf"))


def outcomes_while_not_ready(attempts: list[Attempt]) -> set[str]:
    """What the predictions answered before the server last said it was not ready: the lane wants only
    `refused` and `503` (a 200 here is a prediction from a server that was not ready yet)."""
    until = last_not_ready(attempts)
    return {a.outcome for a in attempts if a.path == "infer" and a.end < until}
