"""The MANIFEST format: the shell command docs/models.md states prints exactly what modelserve builds, and
the parser and the tree check refuse what they must, naming the line or the file."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from pathlib import Path

import pytest

from modelserve.manifest import Entry, ManifestError, build_manifest, parse_manifest, verify_tree

DOC = Path(__file__).resolve().parents[2] / "docs" / "models.md"
SHA = "ab" * 32


def documented_command() -> str:
    """The one-line bash block of docs/models.md that defines the MANIFEST's bytes."""
    blocks = re.findall(r"```bash\n(.*?)```", DOC.read_text(), flags=re.S)
    commands = [b.strip() for b in blocks if b.strip().startswith("find .") and "\n" not in b.strip()]
    assert len(commands) == 1, blocks
    return commands[0]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """Names that test the sort order (C locale: upper case first, bytes of UTF-8), spaces, nesting, dot
    files, and a nested file named MANIFEST that must be left out."""
    root = tmp_path / "model"
    files = {
        "model.joblib": os.urandom(4096),
        "model.joblib.schema.json": b'{"features": ["a", "b"]}',
        "B upper first": b"x",
        "a-lower": b"y",
        ".hidden": b"z",
        "variables/variables.data-00000-of-00001": os.urandom(1000),
        "variables/variables.index": b"idx",
        "vocab/é-accent.txt": "é\n".encode(),
        "vocab/MANIFEST": b"not listed",
        "vocab/nested/deep.bin": b"\x00" * 10,
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def test_the_documented_command_prints_what_modelserve_builds(tree):
    shell = subprocess.run(
        ["bash", "-c", documented_command()],
        cwd=tree,
        capture_output=True,
        check=True,
        env={"PATH": os.environ["PATH"]},
    )
    assert shell.stdout == build_manifest(tree)
    paths = [e.path for e in parse_manifest(shell.stdout)]
    assert paths[0] == ".hidden" and "vocab/MANIFEST" not in paths and len(paths) == 9
    assert paths.index("B upper first") < paths.index("a-lower")  # byte order, not the locale's


def test_a_tree_matching_its_manifest_verifies(tree):
    (tree / "MANIFEST").write_bytes(build_manifest(tree))
    verify_tree(tree, parse_manifest((tree / "MANIFEST").read_bytes()))


def _change(tree: Path, how: str) -> None:
    if how == "modified":
        (tree / "variables" / "variables.index").write_bytes(b"IDX")
    elif how == "extra":
        (tree / "evil.pkl").write_bytes(b"x")
    elif how == "missing":
        (tree / "a-lower").unlink()
    elif how == "symlink":
        (tree / "a-lower").unlink()
        (tree / "a-lower").symlink_to("/etc/hostname")


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("modified", "variables/variables.index: sha256 .* differs from MANIFEST's"),
        ("extra", "evil.pkl is in the directory but not in MANIFEST"),
        ("missing", "a-lower is in MANIFEST but not in the directory"),
        ("symlink", "a-lower is a symbolic link"),
    ],
)
def test_a_tree_that_differs_from_its_manifest_is_refused(tree, how, message):
    entries = parse_manifest(build_manifest(tree))
    _change(tree, how)
    with pytest.raises(ManifestError, match=message):
        verify_tree(tree, entries)


def line(path: str, digest: str = SHA) -> bytes:
    return f"{digest}  {path}\n".encode()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "MANIFEST lists no files"),
        (line("./a").rstrip(b"\n"), "must end with a newline"),
        (f"{SHA} *./a\n".encode(), "line 1 is not '<sha256>  ./<path>'"),
        (line("a"), "line 1 is not"),
        (line("./a", "AB" * 32), "line 1 is not"),
        (line("./a") + line("./../etc/passwd"), "must stay inside the directory"),
        (line(".//etc/passwd"), "must stay inside the directory"),
        (line("./a/./b"), "must stay inside the directory"),
        (line("./a") + line("./a"), "line 2: a is listed twice"),
        (line("./sub/MANIFEST"), "files named MANIFEST are never listed"),
        (b"\\" + line("./a\\nb"), "line 1 is not"),
    ],
    ids=["empty", "no final newline", "binary mode", "no ./", "upper-case hex", "dot-dot", "absolute",
         "dot component", "duplicate", "nested MANIFEST", "escaped name"],
)  # fmt: skip
def test_a_malformed_manifest_is_refused_naming_the_line(data, message):
    with pytest.raises(ManifestError, match=message):
        parse_manifest(data)


def test_parsed_entries_carry_path_and_digest():
    digest = hashlib.sha256(b"x").hexdigest()
    assert parse_manifest(line("./dir/a b", digest)) == [Entry("dir/a b", digest)]
