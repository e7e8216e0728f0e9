"""Model archives built to hurt: every entry that could escape the model directory, alias a file, reach a
device or exhaust the disk is refused by name, and nothing is left behind. A real modelserve process checks
the archive's digest before it unpacks a byte."""

from __future__ import annotations

import hashlib
import io
import stat
import tarfile
import warnings
import zipfile
from pathlib import Path

import pytest

from harness.serving import run_to_exit
from modelserve.archive import ArchiveError, unpack

MAX_BYTES = 100_000
MAX_FILES = 5


def tar_archive(path: Path, members: list[tuple[str, str, bytes | str]]) -> Path:
    """members: (name, kind, data) with kind file, dir, symlink, hardlink, chr, fifo (data = link target)."""
    with tarfile.open(path, "w:gz") as tar:
        for name, kind, data in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                assert isinstance(data, bytes)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE,
                         "chr": tarfile.CHRTYPE, "fifo": tarfile.FIFOTYPE}[kind]  # fmt: skip
            if kind in ("symlink", "hardlink"):
                info.linkname = str(data)
            tar.addfile(info)
    return path


def zip_archive(path: Path, members: list[tuple[str, int, bytes]]) -> Path:
    """members: (name, unix mode, data); zipfile warns about duplicate names but writes them."""
    with warnings.catch_warnings(), zipfile.ZipFile(path, "w") as zf:
        warnings.simplefilter("ignore", UserWarning)
        for name, mode, data in members:
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return path


FILE = stat.S_IFREG | 0o644
OK = b"model bytes"
HOSTILE_TARS = [
    ("absolute path", [("/etc/cron.d/evil", "file", OK)], "absolute paths are refused"),
    ("dot-dot", [("../escape", "file", OK)], "'..' would leave the model directory"),
    ("dot-dot deep inside", [("a/b/../../../escape", "file", OK)], "'..' would leave the model directory"),
    ("symbolic link", [("model.joblib", "symlink", "/etc/passwd")], "is a symbolic link"),
    ("hard link", [("a", "file", OK), ("b", "hardlink", "/etc/passwd")], "is a hard link"),
    ("character device", [("dev-null", "chr", b"")], "is a device file"),
    ("fifo", [("pipe", "fifo", b"")], "is a FIFO"),
    ("same file twice", [("m.bin", "file", OK), ("./m.bin", "file", b"other")], "appears twice"),
    ("file and directory of one name", [("m", "file", OK), ("m/", "dir", b"")], "appears twice"),
    ("too many entries", [(f"f{i}", "file", OK) for i in range(MAX_FILES + 1)], "more than 5 entries"),
    ("too large uncompressed", [("zeros", "file", b"\0" * (MAX_BYTES + 1))], "unpacks to more than 100000"),
    ("many files adding up", [(f"f{i}", "file", b"\0" * 30_000) for i in range(4)], "more than 100000 bytes"),
    ("backslash name", [("..\\escape", "file", OK)], "backslashes and NUL are not allowed"),
]  # fmt: skip
HOSTILE_ZIPS = [
    ("absolute path", [("/etc/evil", FILE, OK)], "absolute paths are refused"),
    ("dot-dot", [("sub/../../escape", FILE, OK)], "'..' would leave the model directory"),
    ("symbolic link", [("link", stat.S_IFLNK | 0o777, b"/etc/passwd")], "is a symbolic link"),
    ("device", [("dev", stat.S_IFCHR | 0o600, b"")], "is a device file"),
    ("same name twice", [("model.onnx", FILE, OK), ("model.onnx", FILE, b"other")], "appears twice"),
    ("zip bomb", [("zeros", FILE, b"\0" * (50 * MAX_BYTES))], "unpacks to more than 100000 bytes"),
]  # fmt: skip


def assert_refused_cleanly(archive: Path, message: str) -> None:
    dest = archive.parent / "unpacked"
    with pytest.raises(ArchiveError, match=message):
        unpack(archive, dest, MAX_BYTES, MAX_FILES)
    assert not dest.exists(), "a refused archive leaves nothing behind"
    assert not (archive.parent / "escape").exists() and not (archive.parent.parent / "escape").exists()


@pytest.mark.parametrize(
    ("members", "message"), [c[1:] for c in HOSTILE_TARS], ids=[c[0] for c in HOSTILE_TARS]
)
def test_hostile_tar_entries_are_refused_by_name(tmp_path, members, message):
    assert_refused_cleanly(tar_archive(tmp_path / "m.tar.gz", members), message)


@pytest.mark.parametrize(
    ("members", "message"), [c[1:] for c in HOSTILE_ZIPS], ids=[c[0] for c in HOSTILE_ZIPS]
)
def test_hostile_zip_entries_are_refused_by_name(tmp_path, members, message):
    assert_refused_cleanly(zip_archive(tmp_path / "m.zip", members), message)


def test_not_an_archive_is_refused(tmp_path):
    bogus = tmp_path / "m.tar.gz"
    bogus.write_bytes(b"this is not gzip")
    assert_refused_cleanly(bogus, "cannot unpack m.tar.gz")


def test_a_plain_archive_unpacks_with_fixed_permissions_and_a_lone_top_directory_entered(tmp_path):
    archive = tar_archive(
        tmp_path / "m.tgz",
        [("iris/", "dir", b""), ("iris/model.joblib", "file", OK), ("iris/sub/vocab.txt", "file", b"v")],
    )
    root = unpack(archive, tmp_path / "out", MAX_BYTES, MAX_FILES)
    assert root == tmp_path / "out" / "iris"
    assert (root / "model.joblib").read_bytes() == OK and (root / "sub" / "vocab.txt").read_bytes() == b"v"
    assert stat.S_IMODE((root / "model.joblib").stat().st_mode) == 0o644


def test_modelserve_checks_the_archive_digest_before_unpacking(tmp_path, iris_joblib):
    archive = tar_archive(tmp_path / "iris.tar.gz", [("model.joblib", "file", iris_joblib.read_bytes())])
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    env = {"MODELSERVE_MODEL_PATH": str(archive), "MODELSERVE_MODEL_SHA256": "0" * 64, "TMPDIR": str(scratch)}
    code, _, termination = run_to_exit(tmp_path / "wrong", env)
    assert code == 1
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert f"refusing to load archive iris.tar.gz: its SHA-256 is {digest}" in termination
    assert list(scratch.iterdir()) == [], "nothing was unpacked"


def test_modelserve_refuses_a_hostile_archive_even_with_the_right_digest(tmp_path):
    archive = tar_archive(tmp_path / "m.tar.gz", [("model.joblib", "symlink", "/etc/passwd")])
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    env = {"MODELSERVE_MODEL_PATH": str(archive), "MODELSERVE_MODEL_SHA256": digest, "TMPDIR": str(tmp_path)}
    code, _, termination = run_to_exit(tmp_path / "run", env)
    assert code == 1
    assert "archive entry 'model.joblib' is a symbolic link; refused" in termination
