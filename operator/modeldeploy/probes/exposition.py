"""The samples of a few named series in a pod's /metrics exposition.

A modelserve exposition carries dozens of families (requests, latency, batches, classes, shadow, drift); a
check needs one or two of them, so lines of other series are skipped before the parser sees them."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


def samples_of(text: str, *names: str) -> Iterator[Sample]:
    """Every sample of the series `names` (sample names, labelled: `name{...} value`) in `text`."""
    prefixes = tuple(name + "{" for name in names)
    wanted = "\n".join(line for line in text.splitlines() if line.startswith(prefixes))
    for family in text_string_to_metric_families(wanted):
        yield from family.samples
