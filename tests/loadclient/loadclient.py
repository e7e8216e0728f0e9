"""A constant-rate HTTP load client for release tests and benchmarks.

Every request goes on a new TCP connection (kube-proxy balances per connection, so keep-alive would hide both
the colour shares and the switch), with no retries and one deadline per request. A request fails on a connect
error, a reset, a timeout, a 5xx or a 429; any other non-2xx answer is counted apart as `unexpected`. Each
answer's `X-Model-Color` and `X-Model-Revision` are recorded with the time it was sent.

Standard library only, so it runs unchanged as a local process or in any image with Python 3.11+:

    python loadclient.py --url http://iris.models.svc/v2/models/iris/infer --body-file req.json \\
        --rate 200 --duration 60 --header 'Authorization: Bearer …'

It prints one JSON line per bucket (``{"bucket": …}``) as the run goes and one summary line
(``{"summary": …}``) at the end; ``--records FILE`` also writes every request as a JSON line. SIGTERM ends a
run early: no new requests, the ones in flight finish, then the summary as usual (the run stays bounded by
``--duration``; a test stops it once the release it watches is over).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import signal
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

FAILED_STATUSES = frozenset({429})
MAX_LISTED_FAILURES = 200
MAX_RESPONSE_BYTES = 1 << 20


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    path: str


@dataclass(frozen=True)
class Record:
    sent_at: float  # wall clock (time.time()), comparable with the cluster's timestamps on this machine
    latency_ms: float
    status: int | None
    error: str | None  # "connect", "reset", "timeout", "protocol" or None
    color: str | None
    revision: str | None


@dataclass
class Bucket:
    start: float
    ok: int = 0
    failed: int = 0
    unexpected: int = 0
    colors: Counter = field(default_factory=Counter)
    revisions: Counter = field(default_factory=Counter)


def parse_target(url: str) -> Target:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"--url must be http://host[:port]/path, got {url!r}")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(parts.hostname, parts.port or 80, path)


def outcome(status: int | None, error: str | None) -> str:
    """'failed' by the lane's rule (connect error, reset, timeout, 5xx, 429), 'unexpected' for another
    non-2xx answer, else 'ok'."""
    if error is not None or status is None:
        return "failed"
    if status >= 500 or status in FAILED_STATUSES:
        return "failed"
    if not 200 <= status < 300:
        return "unexpected"
    return "ok"


def send_times(start: float, rate: float, duration: float, max_requests: int) -> list[float]:
    """When each request is due: a constant rate, bounded in count and time."""
    count = min(max_requests, math.floor(rate * duration))
    return [start + i / rate for i in range(count)]


def build_request(target: Target, body: bytes, headers: list[tuple[str, str]]) -> bytes:
    lines = [
        f"POST {target.path} HTTP/1.1" if body else f"GET {target.path} HTTP/1.1",
        f"Host: {target.host}:{target.port}",
        "Connection: close",
        "User-Agent: modeldeploy-loadclient",
    ]
    if body:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def parse_response_head(raw: bytes) -> tuple[int, dict[str, str]]:
    """Status code and lower-cased headers of an HTTP/1.x response."""
    head, sep, _ = raw.partition(b"\r\n\r\n")
    if not sep:
        raise ValueError("incomplete response head")
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    if not version.startswith("HTTP/1."):
        raise ValueError(f"not an HTTP/1 status line: {lines[0][:40]!r}")
    status = int(rest.split(" ", 1)[0])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers


def aggregate(records: list[Record], bucket_seconds: float, started: float) -> list[Bucket]:
    """Counts per time bucket of send time: outcomes, and the colour and revision of every answer."""
    if not records:
        return []
    last = max(r.sent_at for r in records)
    count = int((last - started) // bucket_seconds) + 1
    buckets = [Bucket(started + i * bucket_seconds) for i in range(count)]
    for r in records:
        b = buckets[int((r.sent_at - started) // bucket_seconds)]
        kind = outcome(r.status, r.error)
        setattr(b, kind, getattr(b, kind) + 1)
        if r.status is not None:
            b.colors[r.color or "none"] += 1
            b.revisions[r.revision or "none"] += 1
    return buckets


def summarize(records: list[Record], started: float) -> dict:
    kinds = Counter(outcome(r.status, r.error) for r in records)
    reasons = Counter(r.error or f"http_{r.status}" for r in records if outcome(r.status, r.error) != "ok")
    latencies = sorted(r.latency_ms for r in records if r.status is not None)
    first_seen: dict[str, float] = {}
    for r in sorted(records, key=lambda r: r.sent_at):
        if r.status is not None and r.color:
            first_seen.setdefault(f"{r.color}/{r.revision}", r.sent_at)
    failures = [asdict(r) for r in records if outcome(r.status, r.error) != "ok"][:MAX_LISTED_FAILURES]
    return {
        "started": started,
        "sent": len(records),
        "ok": kinds["ok"],
        "failed": kinds["failed"],
        "unexpected": kinds["unexpected"],
        "reasons": dict(reasons),
        "colors": dict(Counter(r.color or "none" for r in records if r.status is not None)),
        "first_answer_at": first_seen,
        "latency_ms": {
            "p50": _quantile(latencies, 0.50),
            "p99": _quantile(latencies, 0.99),
            "max": latencies[-1] if latencies else None,
        },
        "failures": failures,
    }


def _quantile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


async def send_one(target: Target, request: bytes, timeout: float) -> Record:
    sent_at = time.time()
    t0 = time.perf_counter()
    stage = "connect"
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(target.host, target.port)
            stage = "reset"
            writer.write(request)
            await writer.drain()
            raw = await reader.read(MAX_RESPONSE_BYTES)
            while raw and b"\r\n\r\n" not in raw:
                more = await reader.read(MAX_RESPONSE_BYTES)
                if not more:
                    break
                raw += more
        if not raw:
            return Record(sent_at, _ms(t0), None, "reset", None, None)
        status, headers = parse_response_head(raw)
        color, revision = headers.get("x-model-color"), headers.get("x-model-revision")
        return Record(sent_at, _ms(t0), status, None, color, revision)
    except TimeoutError:
        return Record(sent_at, _ms(t0), None, "timeout", None, None)
    except ValueError:
        return Record(sent_at, _ms(t0), None, "protocol", None, None)
    except OSError:
        return Record(sent_at, _ms(t0), None, stage, None, None)
    finally:
        if writer is not None:
            writer.close()


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 3)


async def run(args: argparse.Namespace) -> dict:
    target = parse_target(args.url)
    body = Path(args.body_file).read_bytes() if args.body_file else args.body.encode()
    headers = [tuple(part.strip() for part in h.split(":", 1)) for h in args.header]
    request = build_request(target, body, headers)
    started = time.time()
    loop_start = time.monotonic()
    due = send_times(0.0, args.rate, args.duration, args.max_requests)
    records: list[Record] = []
    pending: set[asyncio.Task] = set()
    printed = 0
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    for offset in due:
        if stop.is_set():
            break
        delay = loop_start + offset - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(send_one(target, request, args.timeout))
        pending.add(task)
        task.add_done_callback(lambda t: (pending.discard(t), records.append(t.result())))
        printed = _print_finished_buckets(records, args.bucket, args.timeout, started, printed)
    if pending:
        await asyncio.wait(pending)
    for b in aggregate(records, args.bucket, started)[printed:]:
        _print_bucket(b)
    return summarize(records, started) | {"records": records}


def _print_finished_buckets(
    records: list[Record], width: float, timeout: float, started: float, printed: int
) -> int:
    """Prints the buckets whose every request has finished (a request lasts at most the timeout)."""
    complete = int((time.time() - started - timeout - width) // width)
    if complete <= printed:
        return printed
    for b in aggregate(records, width, started)[printed:complete]:
        _print_bucket(b)
    return complete


def _print_bucket(b: Bucket) -> None:
    counts = {"ok": b.ok, "failed": b.failed, "unexpected": b.unexpected}
    line = {"start": round(b.start, 3), **counts, "colors": dict(b.colors), "revisions": dict(b.revisions)}
    print(json.dumps({"bucket": line}), flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", required=True)
    p.add_argument("--rate", type=float, default=200.0, help="requests per second")
    p.add_argument("--duration", type=float, default=30.0, help="seconds (bounded: at most 600)")
    p.add_argument("--max-requests", type=int, default=120_000)
    p.add_argument("--timeout", type=float, default=2.0, help="seconds per request, connect included")
    p.add_argument("--body", default="")
    p.add_argument("--body-file")
    p.add_argument("--header", action="append", default=[], help="'Name: value' (repeatable)")
    p.add_argument("--bucket", type=float, default=1.0, help="seconds per reported bucket")
    p.add_argument("--records", help="write every request as a JSON line to this file")
    args = p.parse_args(argv)
    if not 0 < args.duration <= 600 or not 0 < args.rate <= 2000:
        p.error("--duration must be in (0, 600] and --rate in (0, 2000]")
    result = asyncio.run(run(args))
    records = result.pop("records")
    if args.records:
        with open(args.records, "w") as f:
            for r in records:
                f.write(json.dumps(asdict(r)) + "\n")
    print(json.dumps({"summary": result}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
