"""Labelled data sets for the quality gate and the live evaluation: CSV (or Parquet) over http(s), capped
in bytes, time, decoded cells and `max_rows`.

The operator reads a data set on a ModelDeployment's behalf, so the read is guarded: only http(s), the host
checked after DNS resolution and the connection pinned to the checked address (``guard``), no redirects,
at most ``MAX_DATASET_BYTES`` within a deadline. Messages say what is wrong ("labelColumn 'y' is not among
the 5 columns of the data set"), never the bytes of the file.

Public: ``LabelledData``, ``DatasetError``, ``load_dataset(http, uri, label_column, max_rows, fmt, guard,
...)``, ``parse_csv(data, label_column, max_rows, where)``, ``parse_parquet(...)``, ``MAX_DATASET_BYTES``,
``MAX_DATASET_CELLS``, ``DATASET_DEADLINE_SECONDS``.
"""

from __future__ import annotations

import asyncio
import csv
import io
import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import httpx

from modeldeploy.probes.bounded import BoundedHttp, ReadLimitExceeded
from modeldeploy.probes.guard import DestinationGuard, DestinationRefused

MAX_DATASET_BYTES = 32 * 1024 * 1024
MAX_DATASET_CELLS = 2_000_000  # decoded values (about 32 bytes each in Python) of features and labels
MAX_PARQUET_DECODED_BYTES = 64 * 1024 * 1024  # uncompressed size of the row groups read
DATASET_DEADLINE_SECONDS = 30.0


class DatasetError(Exception):
    """The data set cannot be used; the message names the URI or column and the rule."""


@dataclass(frozen=True)
class LabelledData:
    columns: list[str]  # feature columns, in file order (label excluded)
    rows: list[list[Any]]  # feature values: float where the cell is a number, else the text
    labels: list[Any]
    source: str

    def __len__(self) -> int:
        return len(self.rows)


def _cell(text: str) -> Any:
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) else text


def _row_limit(max_rows: int, width: int, where: str) -> int:
    limit = min(max_rows, MAX_DATASET_CELLS // max(width, 1))
    if limit < 1:
        raise DatasetError(
            f"{where}: {width} columns are more than the operator decodes ({MAX_DATASET_CELLS})"
        )
    return limit


def _missing_label(label_column: str, width: int) -> DatasetError:
    # The header is the file's content: count it, never quote it (it may be a secret's first line).
    return DatasetError(f"labelColumn: {label_column!r} is not among the {width} columns of the data set")


def parse_csv(data: bytes, label_column: str, max_rows: int, where: str) -> LabelledData:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DatasetError(f"{where}: not UTF-8 text (expected a CSV file)") from None
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader, None)
    except csv.Error:
        raise DatasetError(f"{where}: the header row is not valid CSV") from None
    if not header:
        raise DatasetError(f"{where}: empty file (expected a CSV header row)")
    header = [h.strip() for h in header]
    if label_column not in header:
        raise _missing_label(label_column, len(header))
    label_index = header.index(label_column)
    columns = [h for i, h in enumerate(header) if i != label_index]
    limit = _row_limit(max_rows, len(header), where)
    rows: list[list[Any]] = []
    labels: list[Any] = []
    try:
        for line_no, record in enumerate(reader, start=2):
            if not record:
                continue
            if len(record) != len(header):
                raise DatasetError(
                    f"{where}: line {line_no} has {len(record)} fields, the header has {len(header)}"
                )
            labels.append(_cell(record[label_index]))
            rows.append([_cell(v) for i, v in enumerate(record) if i != label_index])
            if len(rows) >= limit:
                break
    except csv.Error:
        raise DatasetError(f"{where}: line {reader.line_num} is not valid CSV") from None
    if not rows:
        raise DatasetError(f"{where}: no data rows")
    return LabelledData(columns, rows, labels, where)


def parse_parquet(data: bytes, label_column: str, max_rows: int, where: str) -> LabelledData:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq  # optional: only for Parquet data sets
    except ImportError:
        raise DatasetError(
            f"{where}: Parquet needs pyarrow, which is not installed in the operator"
        ) from None
    try:
        parquet = pq.ParquetFile(io.BytesIO(data))
        names = list(parquet.schema_arrow.names)
    except Exception:  # pyarrow raises many types for a corrupt file; its text may quote the file
        raise DatasetError(f"{where}: not a readable Parquet file") from None
    if label_column not in names:
        raise _missing_label(label_column, len(names))
    limit = _row_limit(max_rows, len(names), where)
    try:
        table = _first_rows(parquet, limit, where, pa)
    except DatasetError:
        raise
    except Exception:
        raise DatasetError(f"{where}: not a readable Parquet file") from None
    columns = [c for c in names if c != label_column]
    values = {c: table.column(c).to_pylist() for c in names}
    rows = [[_parquet_cell(values[c][i]) for c in columns] for i in range(table.num_rows)]
    if not rows:
        raise DatasetError(f"{where}: no data rows")
    return LabelledData(columns, rows, values[label_column], where)


def _first_rows(parquet: Any, limit: int, where: str, pa: Any) -> Any:
    """The first `limit` rows, decoding only the row groups that hold them (and refusing oversize ones)."""
    groups, rows, decoded = [], 0, 0
    for index in range(parquet.metadata.num_row_groups):
        if rows >= limit:
            break
        group = parquet.metadata.row_group(index)
        decoded += group.total_byte_size
        if decoded > MAX_PARQUET_DECODED_BYTES:
            raise DatasetError(
                f"{where}: the rows needed decode to more than {MAX_PARQUET_DECODED_BYTES} bytes"
            )
        groups.append(index)
        rows += group.num_rows
    if not groups:
        return pa.table({n: [] for n in parquet.schema_arrow.names})
    return parquet.read_row_groups(groups).slice(0, limit)


def _parquet_cell(value: Any) -> Any:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    return value


async def _read_bytes(
    http: httpx.AsyncClient, uri: str, guard: DestinationGuard, max_bytes: int, deadline_seconds: float
) -> bytes:
    scheme = urlparse(uri).scheme
    if scheme not in ("http", "https"):
        raise DatasetError(
            f"datasetUri: the operator reads only https:// and http:// data sets, not {scheme or 'a path'}"
        )
    try:
        async with asyncio.timeout(deadline_seconds):
            pinned = await guard.pin(uri)
            response = await BoundedHttp(http, deadline_seconds).get(
                pinned.url, max_bytes=max_bytes, headers=pinned.headers, extensions=pinned.extensions
            )
    except DestinationRefused as err:
        raise DatasetError(f"datasetUri: {err}") from None
    except TimeoutError:
        raise DatasetError(f"datasetUri: {uri} was not read within {deadline_seconds:g}s") from None
    except ReadLimitExceeded as err:
        raise DatasetError(f"datasetUri: {uri}: {err}") from None
    except httpx.HTTPError as err:  # the type only: protocol errors may quote the bytes received
        raise DatasetError(f"datasetUri: cannot download {uri}: {type(err).__name__}") from None
    if response.is_redirect:
        raise DatasetError(
            f"datasetUri: GET {uri} answered HTTP {response.status_code} (a redirect); redirects are not "
            "followed, give the final URL"
        )
    if response.status_code != 200:
        raise DatasetError(f"datasetUri: GET {uri} answered HTTP {response.status_code}")
    return response.content


async def load_dataset(
    http: httpx.AsyncClient,
    uri: str,
    label_column: str,
    max_rows: int = 10_000,
    fmt: str | None = None,
    guard: DestinationGuard | None = None,
    *,
    max_bytes: int = MAX_DATASET_BYTES,
    deadline_seconds: float = DATASET_DEADLINE_SECONDS,
) -> LabelledData:
    """Downloads and parses the data set; DatasetError says what is wrong."""
    data = await _read_bytes(http, uri, guard or DestinationGuard(), max_bytes, deadline_seconds)
    path = urlparse(uri).path.lower()
    kind = fmt or ("parquet" if path.endswith((".parquet", ".pq")) else "csv")
    # Decoding megabytes of CSV is CPU work: off the event loop, so other passes and /healthz go on.
    parse = parse_parquet if kind == "parquet" else parse_csv
    return await asyncio.to_thread(parse, data, label_column, max_rows, uri)
