"""A directory model's MANIFEST: one `sha256sum` line per file, so one digest (the MANIFEST's) pins them all.

Public: ``build_manifest(root) -> bytes``, ``parse_manifest(data) -> list[Entry]``,
``verify_tree(root, entries)``, ``Entry``, ``ManifestError``, ``MANIFEST_NAME``, ``MAX_ENTRIES``.

The bytes are exactly what this shell command prints in the model directory (docs/models.md):

    find . -type f ! -name MANIFEST -print0 | LC_ALL=C sort -z | xargs -0 sha256sum

that is `<64 hex>  ./<path>\\n` per file, sorted by the bytes of the path; files named MANIFEST (at any depth)
are left out. Names that sha256sum would escape (a backslash or a newline) are refused, as are `..` and empty
path components: a MANIFEST can only name files inside its own directory.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

MANIFEST_NAME = "MANIFEST"
MAX_ENTRIES = 10_000
_LINE = re.compile(rb"^([0-9a-f]{64})  \./(.+)$")


class ManifestError(Exception):
    """The MANIFEST is malformed or the files do not match it; the message names the line or the file."""


@dataclass(frozen=True)
class Entry:
    path: str  # relative, '/'-separated, without the leading './'
    sha256: str


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _listed_files(root: Path) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink() and path.name != MANIFEST_NAME:
            found.append(path.relative_to(root).as_posix())
    return found


def build_manifest(root: Path) -> bytes:
    """The MANIFEST of the files under `root` (what the documented shell command prints)."""
    lines = []
    for rel in sorted(_listed_files(root), key=lambda p: ("./" + p).encode()):
        check_relative_path(rel)
        lines.append(f"{file_sha256(root / rel)}  ./{rel}\n".encode())
    return b"".join(lines)


def check_relative_path(rel: str) -> str:
    """A path that stays inside the directory: no absolute path, `..`, `.` or empty component, no escapes."""
    if "\\" in rel or "\n" in rel or "\x00" in rel:
        raise ManifestError(f"{rel!r}: file names with a backslash, newline or NUL are not supported")
    parts = rel.split("/")
    if rel.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise ManifestError(f"{rel!r}: a path must stay inside the directory (no '/', '.', '..' or '//')")
    return rel


def parse_manifest(data: bytes) -> list[Entry]:
    """Every line `<sha256>  ./<path>`; paths unique and inside the directory; at most MAX_ENTRIES lines."""
    if data and not data.endswith(b"\n"):
        raise ManifestError("MANIFEST must end with a newline (it is sha256sum's output)")
    entries: list[Entry] = []
    seen: set[str] = set()
    for number, line in enumerate(data.splitlines(), start=1):
        match = _LINE.match(line)
        if not match:
            raise ManifestError(
                f"MANIFEST line {number} is not '<sha256>  ./<path>' (sha256sum's text format)"
            )
        try:
            rel = match.group(2).decode()
        except UnicodeDecodeError:
            raise ManifestError(f"MANIFEST line {number}: the path is not UTF-8") from None
        check_relative_path(rel)
        if rel.rsplit("/", 1)[-1] == MANIFEST_NAME:
            raise ManifestError(f"MANIFEST line {number}: files named MANIFEST are never listed")
        if rel in seen:
            raise ManifestError(f"MANIFEST line {number}: {rel} is listed twice")
        seen.add(rel)
        entries.append(Entry(rel, match.group(1).decode()))
        if len(entries) > MAX_ENTRIES:
            raise ManifestError(f"MANIFEST lists more than {MAX_ENTRIES} files")
    if not entries:
        raise ManifestError("MANIFEST lists no files")
    return entries


def verify_tree(root: Path, entries: list[Entry], ignore: frozenset[str] | set[str] = frozenset()) -> None:
    """The files under `root` are exactly the entries (besides the top-level names in `ignore`), each with its
    digest; symbolic links are refused."""
    wanted = {entry.path: entry.sha256 for entry in entries}
    for path in root.rglob("*"):
        if path.is_symlink():
            raise ManifestError(
                f"{path.relative_to(root).as_posix()} is a symbolic link; MANIFEST trees hold files"
            )
    present = set(_listed_files(root)) - set(ignore)
    extra = sorted(present - set(wanted))
    if extra:
        raise ManifestError(f"{extra[0]} is in the directory but not in MANIFEST ({len(extra)} such files)")
    missing = sorted(set(wanted) - present)
    if missing:
        raise ManifestError(f"{missing[0]} is in MANIFEST but not in the directory ({len(missing)} missing)")
    for rel, expected in wanted.items():
        actual = file_sha256(root / rel)
        if actual != expected:
            raise ManifestError(f"{rel}: sha256 {actual} differs from MANIFEST's {expected}")
