"""Unpack a model archive (.tar.gz, .tgz, .zip) whose digest was already checked, refusing what could escape
or exhaust the destination.

Public: ``is_archive(path)``, ``unpack(archive, dest, max_bytes, max_files)``, ``ArchiveError``,
``ARCHIVE_SUFFIXES``.

Refused, naming the entry: absolute paths and `..` (or empty) components, symbolic and hard links, device
files and FIFOs, the same path twice, more than `max_files` entries, more than `max_bytes` uncompressed
(counted while writing, never trusted from headers). Only regular files and directories are written, with
fixed permissions; nothing of the archive's owners, modes or times is kept.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from .errors import ModelLoadError

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".zip")
CHUNK = 1 << 20


class ArchiveError(ModelLoadError):
    """The archive holds something modelserve will not unpack; the message names the entry and the rule."""


def is_archive(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES)


def safe_name(name: str) -> str:
    """The entry's path inside the destination, or ArchiveError when it could point outside it."""
    if "\x00" in name or "\\" in name:
        raise ArchiveError(f"archive entry {name!r}: backslashes and NUL are not allowed in names")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise ArchiveError(f"archive entry {name!r}: absolute paths are refused")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts:
        raise ArchiveError(f"archive entry {name!r}: an empty path")
    if ".." in parts:
        raise ArchiveError(f"archive entry {name!r}: '..' would leave the model directory; refused")
    return "/".join(parts)


class _Writer:
    """Writes entries under `dest`, enforcing the caps and the one-entry-per-path rule."""

    def __init__(self, dest: Path, max_bytes: int, max_files: int) -> None:
        self.dest, self.max_bytes, self.max_files = dest, max_bytes, max_files
        self.seen: set[str] = set()
        self.written = 0

    def claim(self, name: str) -> Path:
        rel = safe_name(name)
        if rel in self.seen:
            raise ArchiveError(
                f"archive entry {rel!r} appears twice; refused (which one would win is unclear)"
            )
        self.seen.add(rel)
        if len(self.seen) > self.max_files:
            raise ArchiveError(
                f"the archive holds more than {self.max_files} entries (MODELSERVE_ARCHIVE_MAX_FILES)"
            )
        return self.dest / rel

    def directory(self, name: str) -> None:
        self.claim(name).mkdir(parents=True, exist_ok=True)

    def file(self, name: str, source: IO[bytes]) -> None:
        target = self.claim(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        except (FileExistsError, IsADirectoryError, NotADirectoryError) as err:
            raise ArchiveError(
                f"archive entry {name!r} collides with another entry: {err.strerror}"
            ) from None
        with os.fdopen(fd, "wb") as out:
            for chunk in iter(lambda: source.read(CHUNK), b""):
                self.written += len(chunk)
                if self.written > self.max_bytes:
                    raise ArchiveError(
                        f"the archive unpacks to more than {self.max_bytes} bytes "
                        "(MODELSERVE_ARCHIVE_MAX_BYTES)"
                    )
                out.write(chunk)


def _unpack_tar(archive: Path, writer: _Writer) -> None:
    with tarfile.open(archive, mode="r|gz") as tar:  # streamed: one pass, members checked as they come
        for member in tar:
            if member.isdir():
                writer.directory(member.name)
            elif member.isreg():
                source = tar.extractfile(member)
                assert source is not None  # a regular member always has content
                writer.file(member.name, source)
            else:
                kind = ("a symbolic link" if member.issym() else "a hard link" if member.islnk()
                        else "a device file" if member.ischr() or member.isblk()
                        else "a FIFO" if member.isfifo() else "not a regular file")  # fmt: skip
                raise ArchiveError(f"archive entry {member.name!r} is {kind}; refused")


def _zip_kind(info: zipfile.ZipInfo) -> str | None:
    """What a zip entry is, from the Unix mode its creator stored (None: a regular file or a directory)."""
    mode = info.external_attr >> 16
    if not mode or stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device file"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    return "not a regular file"


def _unpack_zip(archive: Path, writer: _Writer) -> None:
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            kind = _zip_kind(info)
            if kind:
                raise ArchiveError(f"archive entry {info.filename!r} is {kind}; refused")
            if info.is_dir():
                writer.directory(info.filename)
                continue
            with zf.open(info) as source:
                writer.file(info.filename, source)


@contextmanager
def _removed_on_error(dest: Path) -> Iterator[None]:
    try:
        yield
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise


def unpack(archive: Path, dest: Path, max_bytes: int, max_files: int) -> Path:
    """Unpack into the new directory `dest`; returns the model root (a lone top-level directory is entered).
    On any refusal nothing is left at `dest`."""
    dest.mkdir(parents=True, exist_ok=False)
    writer = _Writer(dest, max_bytes, max_files)
    with _removed_on_error(dest):
        try:
            if archive.name.lower().endswith(".zip"):
                _unpack_zip(archive, writer)
            else:
                _unpack_tar(archive, writer)
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as err:  # OSError: gzip's own
            raise ArchiveError(f"cannot unpack {archive.name}: {err}".splitlines()[0]) from None
        if not writer.seen:
            raise ArchiveError(f"{archive.name} is empty")
    top = list(dest.iterdir())
    return top[0] if len(top) == 1 and top[0].is_dir() else dest
