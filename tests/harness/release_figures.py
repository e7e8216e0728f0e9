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
