"""Labelled data sets for the quality gate and the live evaluation: CSV (or Parquet) from http(s), file://
or a local path, capped at `max_rows`.

Public: ``LabelledData``, ``DatasetError``, ``load_dataset(http, uri, label_column, max_rows, fmt)``,
``parse_csv(data, label_column, max_rows, where)``, ``parse_parquet(...)``, ``MAX_DATASET_BYTES``.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import httpx

MAX_DATASET_BYTES = 256 * 1024 * 1024


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


def parse_csv(data: bytes, label_column: str, max_rows: int, where: str) -> LabelledData:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DatasetError(f"{where}: not UTF-8 text (expected a CSV file)") from None
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header:
        raise DatasetError(f"{where}: empty file (expected a CSV header row)")
    header = [h.strip() for h in header]
    if label_column not in header:
        raise DatasetError(f"labelColumn: {label_column!r} is not a column of {where}; columns: {header}")
    label_index = header.index(label_column)
    columns = [h for i, h in enumerate(header) if i != label_index]
    rows: list[list[Any]] = []
    labels: list[Any] = []
    for line_no, record in enumerate(reader, start=2):
        if not record:
            continue
        if len(record) != len(header):
            raise DatasetError(
                f"{where}: line {line_no} has {len(record)} fields, the header has {len(header)}"
            )
        labels.append(_cell(record[label_index]))
        rows.append([_cell(v) for i, v in enumerate(record) if i != label_index])
        if len(rows) >= max_rows:
            break
    if not rows:
        raise DatasetError(f"{where}: no data rows")
    return LabelledData(columns, rows, labels, where)


def parse_parquet(data: bytes, label_column: str, max_rows: int, where: str) -> LabelledData:
    try:
        import pyarrow.parquet as pq  # optional: only for Parquet data sets
    except ImportError:
        raise DatasetError(
            f"{where}: Parquet needs pyarrow, which is not installed in the operator"
        ) from None
    try:
        table = pq.read_table(io.BytesIO(data)).slice(0, max_rows)
    except Exception as err:  # pyarrow raises many types for a corrupt file
        raise DatasetError(f"{where}: not a readable Parquet file ({err})") from None
    if label_column not in table.column_names:
        raise DatasetError(
            f"labelColumn: {label_column!r} is not a column of {where}; columns: {table.column_names}"
        )
    columns = [c for c in table.column_names if c != label_column]
    values = {c: table.column(c).to_pylist() for c in table.column_names}
    rows = [[_parquet_cell(values[c][i]) for c in columns] for i in range(table.num_rows)]
    if not rows:
        raise DatasetError(f"{where}: no data rows")
    return LabelledData(columns, rows, values[label_column], where)


def _parquet_cell(value: Any) -> Any:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    return value


async def _read_bytes(http: httpx.AsyncClient, uri: str) -> bytes:
    parsed = urlparse(uri)
    if parsed.scheme in ("http", "https"):
        try:
            async with http.stream("GET", uri) as response:
                if response.status_code != 200:
                    raise DatasetError(f"datasetUri: GET {uri} answered HTTP {response.status_code}")
                chunks, size = [], 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > MAX_DATASET_BYTES:
                        raise DatasetError(f"datasetUri: {uri} is larger than {MAX_DATASET_BYTES} bytes")
                    chunks.append(chunk)
                return b"".join(chunks)
        except httpx.HTTPError as err:
            raise DatasetError(f"datasetUri: cannot download {uri}: {type(err).__name__}: {err}") from None
    if parsed.scheme in ("file", ""):
        path = Path(unquote(parsed.path) if parsed.scheme == "file" else uri)
        try:
            if path.stat().st_size > MAX_DATASET_BYTES:
                raise DatasetError(f"datasetUri: {uri} is larger than {MAX_DATASET_BYTES} bytes")
            return path.read_bytes()
        except OSError as err:
            raise DatasetError(f"datasetUri: cannot read {uri}: {err.strerror or err}") from None
    raise DatasetError(
        f"datasetUri: scheme {parsed.scheme}:// cannot be read by the operator; use https://, http:// or file://"
    )


async def load_dataset(
    http: httpx.AsyncClient, uri: str, label_column: str, max_rows: int = 10_000, fmt: str | None = None
) -> LabelledData:
    """Downloads and parses the data set; DatasetError says what is wrong."""
    data = await _read_bytes(http, uri)
    path = urlparse(uri).path.lower()
    kind = fmt or ("parquet" if path.endswith((".parquet", ".pq")) else "csv")
    if kind == "parquet":
        return parse_parquet(data, label_column, max_rows, uri)
    return parse_csv(data, label_column, max_rows, uri)
