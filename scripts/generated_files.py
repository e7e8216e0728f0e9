"""One main for the scripts that write generated files (chart copies and values table, the argocd-cm snippet,
the API reference): write them, or with --check name each stale one and exit 1 (CI)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def stale_files(files: Mapping[Path, str]) -> list[Path]:
    return [path for path, text in files.items() if not path.exists() or path.read_text() != text]


def write_or_check(
    expected: Callable[[], Mapping[Path, str]], description: str, command: str, argv: list[str] | None = None
) -> int:
    """`expected()` maps each generated file to its text; `command` is what a person runs to refresh them."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--check", action="store_true", help="report stale files instead of writing them")
    args = parser.parse_args(argv)
    files = expected()
    if args.check:
        stale = stale_files(files)
        for path in stale:
            print(f"stale: {path.relative_to(REPO)} (run {command})", file=sys.stderr)
        return 1 if stale else 0
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return 0
