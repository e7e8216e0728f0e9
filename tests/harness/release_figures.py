"""What a client felt during one release, from the load client's per-request records and two moments of the
pods' timeline, and the table that sets releases side by side. Pure functions: benchmarks do the I/O.

Who answered is read from the `X-Model-Revision` header of each response (never from its status), so the same
figures hold for any controller that runs the operator's pod template.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

CUTOVER_WINDOW = 100  # answers: from the cutover on, every 100 consecutive answers hold at most one old one
CUTOVER_SHARE = 0.99
DURING_TAIL = 5.0  # seconds after the cutover still counted as "during" the switch


@dataclass(frozen=True)
class ReleaseFigures:
    sent: int
    failed: int
    cutover_s: float | None  # candidate's first Ready pod -> >= 99% of answers from the candidate
    p50_ms: tuple[float | None, float | None, float | None]  # before / during / after the switch
    p99_ms: tuple[float | None, float | None, float | None]
    total_s: float | None  # apply -> the old pods gone


def quantile(values: Sequence[float], q: float) -> float | None:
    """The loadclient's quantile (nearest rank below), so figures match its summaries."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else None


def old_revision(records: Sequence[dict], applied_at: float) -> str | None:
    """The revision that answered most before the release was applied."""
    before = Counter(r["revision"] for r in records if r["sent_at"] < applied_at and r["status"] is not None)
    return before.most_common(1)[0][0] if before else None


def cutover_at(answers: Sequence[dict], old: str | None) -> float | None:
    """Send time of the first answer from which every run of CUTOVER_WINDOW consecutive answers came at least
    CUTOVER_SHARE from another revision than `old` (None if the answers never got there)."""
    is_old = [a["revision"] == old for a in answers]
    allowed = CUTOVER_WINDOW - round(CUTOVER_WINDOW * CUTOVER_SHARE)
    if len(answers) < CUTOVER_WINDOW:
        return None
    at = None
    # Walk the windows from the last backwards: `at` is the earliest start after which none breaks the rule.
    olds = sum(is_old[-CUTOVER_WINDOW:])
    for start in range(len(answers) - CUTOVER_WINDOW, -1, -1):
        if start < len(answers) - CUTOVER_WINDOW:
            olds += is_old[start] - is_old[start + CUTOVER_WINDOW]
        if olds > allowed:
            break
        at = start
    if at is None:
        return None
    while is_old[at]:  # the cutover starts with a candidate's answer
        at += 1
    return answers[at]["sent_at"]


def release_figures(
    records: Sequence[dict],
    summary: dict,
    *,
    applied_at: float,
    first_ready: float | None,
    old_gone: float | None,
) -> ReleaseFigures:
    """Figures of one release; `summary` is the load client's (its failure rule counts `failed`)."""
    answers = sorted((r for r in records if r["status"] is not None), key=lambda r: r["sent_at"])
    old = old_revision(answers, applied_at)
    after_ready = [a for a in answers if first_ready is not None and a["sent_at"] >= first_ready]
    switched = cutover_at(after_ready, old)
    start = first_ready if first_ready is not None else applied_at
    end = switched + DURING_TAIL if switched is not None else float("inf")
    windows = (
        [a["latency_ms"] for a in answers if a["sent_at"] < applied_at],
        [a["latency_ms"] for a in answers if start <= a["sent_at"] < end],
        [a["latency_ms"] for a in answers if a["sent_at"] >= end],
    )
    return ReleaseFigures(
        sent=summary["sent"],
        failed=summary["failed"],
        cutover_s=None if switched is None or first_ready is None else switched - first_ready,
        p50_ms=tuple(quantile(w, 0.50) for w in windows),  # type: ignore[arg-type]
        p99_ms=tuple(quantile(w, 0.99) for w in windows),  # type: ignore[arg-type]
        total_s=None if old_gone is None else old_gone - applied_at,
    )


def _median(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def _max(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _ratio(ours: float | None, theirs: float | None) -> str:
    return "-" if ours is None or not theirs else f"{ours / theirs:.2f}x"


TABLE_HEADER = (
    "| release | runs | failed (all runs) | cutover s median / max | p50 ms before / during / after "
    "| p99 ms before / during / after | apply → old pods gone s median / max |"
)


def table(rows: dict[str, list[ReleaseFigures]], baseline: str) -> str:
    """A markdown table, one row per release kind (medians over its runs, and maxima), and the ratios of each
    other kind's medians to `baseline`'s."""
    lines = [TABLE_HEADER, "|---|---:|---:|---:|---:|---:|---:|"]
    medians: dict[str, dict[str, float | None]] = {}
    for kind, runs in rows.items():
        p50 = [_median([r.p50_ms[i] for r in runs]) for i in range(3)]
        p99 = [_median([r.p99_ms[i] for r in runs]) for i in range(3)]
        cut = [r.cutover_s for r in runs]
        total = [r.total_s for r in runs]
        medians[kind] = {"cutover": _median(cut), "p99 during": p99[1], "total": _median(total)}
        lines.append(
            f"| {kind} | {len(runs)} | {sum(r.failed for r in runs)} of {sum(r.sent for r in runs):,} "
            f"| {_fmt(_median(cut), 2)} / {_fmt(_max(cut), 2)} | {' / '.join(_fmt(v) for v in p50)} "
            f"| {' / '.join(_fmt(v) for v in p99)} | {_fmt(_median(total))} / {_fmt(_max(total))} |"
        )
    if baseline in medians:
        theirs = medians[baseline]
        for kind, ours in medians.items():
            if kind != baseline:
                ratios = ", ".join(f"{k} {_ratio(v, theirs[k])}" for k, v in ours.items())
                lines.append(f"\n{kind} / {baseline} (medians): {ratios}")
    return "\n".join(lines)


def failed(record: dict) -> bool:
    """The load client's failure rule: no answer (connect error, reset, timeout), a 5xx or a 429."""
    status = record["status"]
    return status is None or status >= 500 or status == 429


@dataclass(frozen=True)
class FailureFigures:
    sent: int
    bad_answers: int  # answers from another revision than the one serving before `kubectl apply`
    failed_while_bad: int  # failed requests sent from the first to the last answer of the bad revision
    recovery_s: float | None  # apply -> the last answer from the bad revision (0: never seen; None: kept)
    rejected_s: float | None  # apply -> the controller reported the abort (None: it released the bad version)


def failure_figures(
    records: Sequence[dict], *, applied_at: float, rejected_at: float | None
) -> FailureFigures:
    """What clients felt from a bad candidate, read from who answered (headers), never from status alone."""
    ordered = sorted(records, key=lambda r: r["sent_at"])
    old = old_revision(ordered, applied_at)
    bad = [r["sent_at"] for r in ordered if r["sent_at"] >= applied_at and r["status"] is not None
           and r["revision"] != old]  # fmt: skip
    window = [r for r in ordered if bad and bad[0] <= r["sent_at"] <= bad[-1]]
    return FailureFigures(
        sent=len(ordered),
        bad_answers=len(bad),
        failed_while_bad=sum(map(failed, window)),
        recovery_s=None if rejected_at is None else bad[-1] - applied_at if bad else 0.0,
        rejected_s=None if rejected_at is None else rejected_at - applied_at,
    )


FAILURE_HEADER = (
    "| release | runs | failed while the bad version served median / max (all runs) "
    "| answers from the bad version (all runs) | apply → every answer from v1 again s median / max "
    "| aborted | apply → abort reported s median |"
)


def failure_table(rows: dict[str, list[FailureFigures]], ours: str) -> str:
    """A markdown table of the failure rows (medians, maxima) and the ratios of `ours` to each other kind."""
    lines = [FAILURE_HEADER, "|---|---:|---:|---:|---:|---:|---:|"]
    medians: dict[str, dict[str, float | None]] = {}
    for kind, runs in rows.items():
        bad = [float(r.failed_while_bad) for r in runs]
        recovery = [r.recovery_s for r in runs]
        medians[kind] = {"failed": _median(bad), "recovery": _median(recovery)}
        lines.append(
            f"| {kind} | {len(runs)} | {_fmt(_median(bad))} / {_fmt(_max(bad), 0)} "
            f"({sum(r.failed_while_bad for r in runs)} of {sum(r.sent for r in runs):,} sent) "
            f"| {sum(r.bad_answers for r in runs):,} "
            f"| {_fmt(_median(recovery), 2)} / {_fmt(_max(recovery), 2)} "
            f"| {sum(r.rejected_s is not None for r in runs)} of {len(runs)} "
            f"| {_fmt(_median([r.rejected_s for r in runs]), 2)} |"
        )
    if ours in medians:
        for kind, theirs in medians.items():
            if kind != ours:
                ratios = ", ".join(f"{k} {_ratio(v, theirs[k])}" for k, v in medians[ours].items())
                lines.append(f"\n{ours} / {kind} (medians): {ratios}")
    return "\n".join(lines)
