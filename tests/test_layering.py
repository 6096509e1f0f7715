"""The layering of DESIGN.md, checked on every import statement of the package."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["katib", "suggestion", "earlystop"]


def _modules() -> list[Path]:
    return [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py") if "migrations" not in p.parts]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _uses(imports: set[str], top: str) -> bool:
    return any(i == top or i.startswith(top + ".") for i in imports)


def _violations(rule: str) -> list[str]:
    out = []
    for path in _modules():
        rel, imports = _rel(path), _imports(path)
        pb2 = any(i.split(".")[-1].endswith("_pb2") or i.split(".")[-1].endswith("_pb2_grpc")
                  for i in imports if i.startswith("katib.rpc"))
        if rule == "api" and rel.startswith("katib/api/"):
            out += [f"{rel}: {t}" for t in ("grpc", "kubernetes", "sqlalchemy") if _uses(imports, t)]
        elif rule == "algorithms" and rel.split("/")[0] in ("suggestion", "earlystop") and not rel.endswith("service.py"):
            out += [f"{rel}: {t}" for t in ("grpc", "kubernetes", "sqlalchemy", "katib.rpc") if _uses(imports, t)]
        elif rule == "protobuf" and not rel.startswith("katib/rpc/") and pb2:
            out.append(f"{rel}: imports generated protobuf modules")
        elif rule == "kubernetes" and _uses(imports, "kubernetes") and not rel.startswith("katib/backends/kubernetes/"):
            out.append(f"{rel}: kubernetes")
        elif rule == "core" and rel.startswith("katib/controller/"):
            out += [f"{rel}: {t}" for t in ("katib.backends", "katib.store", "grpc", "kubernetes", "sqlalchemy")
                    if _uses(imports, t)]
        elif rule == "visualization" and rel.startswith("katib/visualization/"):
            # The figures are shared by the dashboard and the Python API: no web framework here,
            # and experiments are read through KatibClient, never the database or the cluster directly.
            out += [f"{rel}: {t}" for t in ("starlette", "uvicorn", "jinja2", "katib.ui", "sqlalchemy", "grpc",
                                            "kubernetes") if _uses(imports, t)]
        elif rule == "sqlalchemy" and _uses(imports, "sqlalchemy") and not rel.startswith(("katib/store/", "katib/backends/")):
            out.append(f"{rel}: sqlalchemy")
    return out


@pytest.mark.parametrize("rule", ["api", "algorithms", "protobuf", "kubernetes", "core", "sqlalchemy",
                                  "visualization"])
def test_layering(rule: str) -> None:
    assert _violations(rule) == []


def test_the_check_sees_the_package() -> None:
    # A check that reads no files passes vacuously; make sure it reads the real tree.
    files = {_rel(p) for p in _modules()}
    assert "katib/api/model.py" in files and "suggestion/base.py" in files
    assert "sqlalchemy" not in " ".join(_imports(ROOT / "katib/api/model.py"))
