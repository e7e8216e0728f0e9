"""CLI: `modelserve serve [--flags]` and `modelserve fetch URI DEST [--sha256 HEX]`.

Every serve flag has the name of its MODELSERVE_* variable (--model-path <-> MODELSERVE_MODEL_PATH);
a flag given on the command line wins over the environment.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

EXIT_BAD_CONFIG = 2
EXIT_DIGEST_MISMATCH = 3
EXIT_DOWNLOAD_FAILURE = 4


def build_parser() -> argparse.ArgumentParser:
    from .settings import Settings

    parser = argparse.ArgumentParser(prog="modelserve", description="Serve one ML model over HTTP.")
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser("serve", help="load the model and serve it (default)")
    for name, info in Settings.model_fields.items():
        default = info.default
        serve.add_argument(
            f"--{name.replace('_', '-')}",
            dest=name,
            default=None,
            metavar="VALUE",
            help=f"env MODELSERVE_{name.upper()} (default: {default!r})",
        )
    fetch = commands.add_parser("fetch", help="download a model atomically and verify its SHA-256")
    fetch.add_argument(
        "uri",
        help="https://, http://, s3://bucket/key, gs://bucket/object, azure://account/container/blob, "
        "file:// or a local path",
    )
    fetch.add_argument("dest", help="destination file (written via a temp file and a rename)")
    fetch.add_argument("--sha256", default="", help="expected SHA-256 (hex); mismatch exits 3")
    fetch.add_argument(
        "--schema-sha256",
        default="",
        help="expected SHA-256 of <uri>.schema.json; the manifest is then required (mismatch exits 3)",
    )
    fetch.add_argument(
        "--max-bytes", type=int, default=None, help="size cap per file (env MODELSERVE_FETCH_MAX_BYTES)"
    )
    fetch.add_argument(
        "--timeout-seconds",
        type=float,
        default=None,
        help="deadline of the whole fetch (env MODELSERVE_FETCH_TIMEOUT_SECONDS)",
    )
    fetch.add_argument(
        "--optional",
        action="store_true",
        help="a download failure or digest mismatch is reported (stderr, termination message) but exits 0, "
        "so the pod starts without the file",
    )
    return parser


def settings_errors(err: ValidationError) -> str:
    parts = []
    for item in err.errors():
        field = ".".join(str(p) for p in item["loc"])
        parts.append(f"MODELSERVE_{field.upper()} (--{field.replace('_', '-')}): {item['msg']}")
    return "bad configuration: " + "; ".join(parts)


class BadEnvironment(Exception):
    """The environment holds variables that must not be there."""


def refuse_misspelt_settings() -> None:

    from .settings import misspelt_settings

    names = misspelt_settings(os.environ)
    if names:
        raise BadEnvironment(
            "bad configuration: " + ", ".join(names) + ": modelserve reads only upper-case MODELSERVE_* "
            "variables; a variable in another letter case could override them (unset it or write it in "
            "upper case)"
        )


def refuse_missing_key_file(settings: Any) -> None:

    if settings.api_keys_required and not os.path.isfile(settings.api_keys_file):
        raise BadEnvironment(
            "bad configuration: MODELSERVE_API_KEYS_FILE (--api-keys-file): "
            f"{settings.api_keys_file} does not exist; a key file that is named must be there (serving "
            "without it would let everyone in); set it to an empty value to serve without API keys"
        )


def run_serve(args: argparse.Namespace) -> int:
    from .server import serve, write_termination_message
    from .settings import Settings

    overrides = {k: v for k, v in vars(args).items() if k != "command" and v is not None}
    try:
        refuse_misspelt_settings()
        settings = Settings(**overrides)
        refuse_missing_key_file(settings)
    except (ValidationError, BadEnvironment) as err:
        message = settings_errors(err) if isinstance(err, ValidationError) else str(err)
        print(message, file=sys.stderr)
        write_termination_message(
            overrides.get("termination_message_path") or _env_termination_path(), message
        )
        return EXIT_BAD_CONFIG
    return serve(settings)


def _env_termination_path() -> str:

    return os.environ.get("MODELSERVE_TERMINATION_MESSAGE_PATH", "/dev/termination-log")


def _bad_digest(value: str) -> bool:
    return bool(value) and (len(value) != 64 or any(c not in "0123456789abcdef" for c in value))


def _fetch_failed(message: str, code: int) -> int:
    """stderr, and the termination message when the pod names its file (the operator quotes it in status)."""
    line = message.replace("\n", " ")
    print(line, file=sys.stderr)
    path = os.environ.get("MODELSERVE_TERMINATION_MESSAGE_PATH")
    if path:
        with contextlib.suppress(OSError):  # not writable: stderr still has it (FallbackToLogsOnError)
            Path(path).write_text(line + "\n", encoding="utf-8")
    return code


def run_fetch(args: argparse.Namespace) -> int:
    from .errors import DigestMismatch, FetchError
    from .fetch import FetchSettings, fetch, redact

    sha, schema_sha = args.sha256.strip().lower(), args.schema_sha256.strip().lower()
    for flag, value in (("--sha256", sha), ("--schema-sha256", schema_sha)):
        if _bad_digest(value):
            print(f"bad configuration: {flag} must be 64 hexadecimal characters", file=sys.stderr)
            return EXIT_BAD_CONFIG
    try:
        FetchSettings()
    except ValidationError as err:
        print(f"bad configuration: {err}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    if (args.max_bytes is not None and args.max_bytes < 1) or (
        args.timeout_seconds is not None and args.timeout_seconds <= 0
    ):
        print("bad configuration: --max-bytes and --timeout-seconds must be positive", file=sys.stderr)
        return EXIT_BAD_CONFIG
    try:
        digest = fetch(
            args.uri,
            args.dest,
            sha,
            schema_sha256=schema_sha,
            max_bytes=args.max_bytes,
            timeout_seconds=args.timeout_seconds,
        )
    except DigestMismatch as err:
        return _fetch_failed(f"fetch failed: {err}", 0 if args.optional else EXIT_DIGEST_MISMATCH)
    except FetchError as err:
        return _fetch_failed(f"fetch failed: {err}", 0 if args.optional else EXIT_DOWNLOAD_FAILURE)
    except OSError as err:
        message = f"fetch failed: cannot write {args.dest}: {err}"
        return _fetch_failed(message, 0 if args.optional else EXIT_DOWNLOAD_FAILURE)
    print(f"fetched {redact(args.uri)} -> {args.dest}" + (f" sha256={digest}" if digest else ""))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-"):
        argv = ["serve", *argv]  # `python -m modelserve` with no command serves
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return EXIT_BAD_CONFIG if exit_.code else 0
    if args.command == "fetch":
        return run_fetch(args)
    return run_serve(args)


if __name__ == "__main__":
    sys.exit(main())
