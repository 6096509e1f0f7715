#!/usr/bin/env python3
"""Regenerate katib/rpc/api_pb2.py, api_pb2.pyi and api_pb2_grpc.py from proto/api.proto.

Usage: ``python scripts/gen_proto.py [--out DIR]`` (default: katib/rpc of this checkout).

Uses the grpcio-tools pinned in pyproject.toml and refuses any other version, because the
generated code embeds the generator's version and a different one would make the checked-in
files flap between machines. tests/rpc/test_generated.py runs this into a temporary directory
and compares, so stale generated files fail the tests.
"""

from __future__ import annotations

import argparse
import re
import sys
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
PROTO = "api.proto"
DEFAULT_OUT = ROOT / "katib" / "rpc"
PINNED_GRPCIO_TOOLS = "1.85.1"
GENERATED = ("api_pb2.py", "api_pb2.pyi", "api_pb2_grpc.py")

# protoc writes a top-level import; the modules live in a package, so make it relative to it.
_GRPC_IMPORT = re.compile(r"^import api_pb2 as api__pb2$", re.MULTILINE)
_PACKAGE_IMPORT = "from katib.rpc import api_pb2 as api__pb2"


def generate(out_dir: Path) -> list[Path]:
    """Write the three generated modules into ``out_dir`` and return their paths."""
    installed = version("grpcio-tools")
    if installed != PINNED_GRPCIO_TOOLS:
        raise SystemExit(f"grpcio-tools {PINNED_GRPCIO_TOOLS} is required (pyproject pins it); "
                         f"found {installed}. Run: pip install grpcio-tools=={PINNED_GRPCIO_TOOLS}")
    from grpc_tools import protoc  # imported late: only this script needs grpcio-tools

    out_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_DIR}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        str(PROTO_DIR / PROTO),
    ]
    if protoc.main(args) != 0:
        raise SystemExit(f"protoc failed on {PROTO_DIR / PROTO}")
    grpc_module = out_dir / "api_pb2_grpc.py"
    text, count = _GRPC_IMPORT.subn(_PACKAGE_IMPORT, grpc_module.read_text())
    if count != 1:
        raise SystemExit(f"expected one 'import api_pb2' line in {grpc_module}, found {count}")
    grpc_module.write_text(text)
    return [out_dir / name for name in GENERATED]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    args = parser.parse_args(argv)
    for path in generate(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
