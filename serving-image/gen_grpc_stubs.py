"""Generate modelserve's gRPC modules (modelserve/oip/*_pb2*.py) from modelserve/oip/grpc_predict_v2.proto.

python serving-image/gen_grpc_stubs.py           # write them (needs grpcio-tools: the dev extra)
python serving-image/gen_grpc_stubs.py --check   # exit 1 if they are stale (CI)

The modules are committed, so the image needs no code generator; protobuf's runtime accepts code generated
by an older protoc of the same or the previous major version.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from generated_files import write_or_check

ROOT = Path(__file__).resolve().parent  # serving-image/: imports in the output read `from modelserve.oip`
PROTO = Path("modelserve") / "oip" / "grpc_predict_v2.proto"
OUTPUTS = ("grpc_predict_v2_pb2.py", "grpc_predict_v2_pb2_grpc.py")


def generate() -> dict[Path, str]:
    from grpc_tools import protoc

    with tempfile.TemporaryDirectory() as out:
        args = ["protoc", f"-I{ROOT}", f"--python_out={out}", f"--grpc_python_out={out}", str(PROTO)]
        if protoc.main(args) != 0:
            raise SystemExit(f"protoc failed on {PROTO}")
        generated = Path(out) / PROTO.parent
        return {ROOT / PROTO.parent / name: (generated / name).read_text() for name in OUTPUTS}


def main(argv: list[str] | None = None) -> int:
    return write_or_check(generate, __doc__.splitlines()[0], "python serving-image/gen_grpc_stubs.py", argv)


if __name__ == "__main__":
    sys.exit(main())
