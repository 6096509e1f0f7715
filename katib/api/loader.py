"""Read experiments (and the ConfigMaps their trial templates live in) from YAML or JSON.

A file or text may hold several documents (``---``) or a ``kind: List``. Experiments come
back as ``Experiment`` objects; ConfigMap documents are skipped, or collected into a
``ConfigMapLookup`` when one is passed, so an experiment whose template sits in a
ConfigMap of the same file (or of files given to ``ConfigMapLookup.from_files``) works.

Every problem comes out as a ``ValidationError`` of ``FieldError``s: YAML syntax errors with
line and column, type errors with the field path (``spec.parallelTrialCount: must be an
integer``). When a source has more than one document, paths start with ``documents[i].``.
"""

from __future__ import annotations

import os
from typing import Any, Iterable, Union

import yaml

from katib.api._read import MAX_BYTES, parse_text, read_file
from katib.api.model import API_VERSION, KIND_EXPERIMENT, Experiment
from katib.errors import FieldError, ValidationError

__all__ = ["ConfigMapLookup", "load_experiments", "load_experiment", "read_documents", "dump_yaml", "Source",
           "MAX_BYTES"]

Source = Union[str, "os.PathLike[str]"]


def _is_path(source: Source) -> bool:
    if isinstance(source, os.PathLike):
        return True
    text = str(source)
    if "\n" in text or text.lstrip()[:1] in ("{", "["):
        return False
    # One line: a file that exists or looks like a file name (so a typo says "cannot read").
    return os.path.exists(text) or text.endswith((".yaml", ".yml", ".json")) or not any(c in text for c in ": ")


def read_documents(source: Source) -> tuple[str, list[Any]]:
    """``(label, documents)`` of a file path or of YAML/JSON text. ``label`` names the
    source in messages (the path, or ``<text>``). Raises ValidationError on syntax errors,
    encodings YAML does not allow, and files too large or too deep (see ``katib.api._read``)."""
    if _is_path(source):
        label = os.fspath(source)
        text = read_file(label)
    else:
        label, text = "<text>", str(source)
    return label, parse_text(text, label)


def _flatten(docs: list[Any]) -> list[tuple[str, Any]]:
    """Number documents and unpack ``kind: List`` items (what ``kubectl get -o yaml`` writes)."""
    out: list[tuple[str, Any]] = []
    for i, doc in enumerate(docs):
        if doc is None:
            continue
        if isinstance(doc, dict) and doc.get("kind") == "List" and isinstance(doc.get("items"), list):
            out.extend((f"documents[{i}].items[{j}]", item) for j, item in enumerate(doc["items"]))
        else:
            out.append((f"documents[{i}]", doc))
    return out


class ConfigMapLookup:
    """ConfigMaps by namespace and name, read from manifests.

    A ConfigMap manifest without ``metadata.namespace`` matches any namespace (``kubectl
    apply -n`` would put it where it is needed); one with a namespace matches only that one.
    A cluster backend can stand in anything with the same ``get``.
    """

    def __init__(self, manifests: Iterable[dict[str, Any]] = ()) -> None:
        self._maps: dict[tuple[str | None, str], dict[str, str]] = {}
        for manifest in manifests:
            self.add(manifest)

    @classmethod
    def from_files(cls, *sources: Source) -> "ConfigMapLookup":
        """Collect the ConfigMaps of ``sources`` (other documents are ignored)."""
        lookup = cls()
        for source in sources:
            lookup.add_source(source)
        return lookup

    def add_source(self, source: Source) -> int:
        """Add every ConfigMap of a file or text; returns how many."""
        label, docs = read_documents(source)
        count = 0
        for where, doc in _flatten(docs):
            if isinstance(doc, dict) and doc.get("kind") == "ConfigMap":
                self.add(doc, where=f"{label} {where}")
                count += 1
        return count

    def add(self, manifest: dict[str, Any], *, where: str = "ConfigMap") -> None:
        """Add one ConfigMap manifest; ValidationError if it is not one."""
        meta = manifest.get("metadata")
        name = meta.get("name") if isinstance(meta, dict) else None
        if manifest.get("kind") != "ConfigMap" or not isinstance(name, str) or not name:
            raise ValidationError([FieldError(where, "not a ConfigMap with metadata.name")])
        data = manifest.get("data") or {}
        if not isinstance(data, dict):
            raise ValidationError([FieldError(f"{where}.data", "must be an object of text values")])
        bad = [k for k, v in data.items() if not isinstance(v, str)]
        if bad:
            raise ValidationError([FieldError(f"{where}.data.{k}", "ConfigMap values must be text; quote it or use "
                                              "a block scalar (|)") for k in bad])
        namespace = meta.get("namespace") if isinstance(meta, dict) else None
        self._maps[(namespace or None, name)] = dict(data)

    def get(self, name: str, namespace: str | None) -> dict[str, str] | None:
        """The ``data`` of ConfigMap ``namespace/name``, or None."""
        found = self._maps.get((namespace or None, name))
        if found is None:
            found = self._maps.get((None, name))
        return found

    def __len__(self) -> int:
        return len(self._maps)

    def __repr__(self) -> str:
        names = ", ".join(f"{ns}/{n}" if ns else n for ns, n in self._maps)
        return f"ConfigMapLookup({names})"


def _experiment(doc: Any, prefix: str, errors: list[FieldError]) -> Experiment | None:
    def at(path: str) -> str:
        return f"{prefix}.{path}" if prefix and path else (prefix or path)

    if not isinstance(doc, dict):
        errors.append(FieldError(prefix, f"must be an object with apiVersion, kind, metadata and spec, got "
                                 f"{type(doc).__name__}"))
        return None
    bad = len(errors)
    if doc.get("apiVersion") != API_VERSION:
        errors.append(FieldError(at("apiVersion"), f"must be {API_VERSION}, got {doc.get('apiVersion')!r}"))
    if doc.get("kind") != KIND_EXPERIMENT:
        errors.append(FieldError(at("kind"), f"must be {KIND_EXPERIMENT}, got {doc.get('kind')!r}"))
    if len(errors) > bad:
        return None
    own: list[FieldError] = []
    exp = Experiment.from_dict(doc, "", own)
    errors.extend(FieldError(at(e.path), e.message) for e in own)
    return None if own else exp


def load_experiments(source: Source, *, config_maps: ConfigMapLookup | None = None) -> list[Experiment]:
    """Every Experiment of a file or text (possibly none). ConfigMap documents go into
    ``config_maps`` when given and are skipped otherwise; any other kind is an error."""
    label, docs = read_documents(source)
    items = _flatten(docs)
    several = len(items) > 1
    errors: list[FieldError] = []
    experiments: list[Experiment] = []
    for where, doc in items:
        prefix = where if several else ""
        if isinstance(doc, dict) and doc.get("kind") == "ConfigMap" and doc.get("apiVersion", "v1") == "v1":
            if config_maps is not None:
                try:
                    config_maps.add(doc, where=prefix or "ConfigMap")
                except ValidationError as exc:
                    errors.extend(exc.errors)
            continue
        exp = _experiment(doc, prefix, errors)
        if exp is not None:
            experiments.append(exp)
    if errors:
        if label != "<text>":
            errors = [FieldError(e.path, f"{e.message} (in {label})") for e in errors]
        raise ValidationError(errors)
    return experiments


def load_experiment(source: Source, *, config_maps: ConfigMapLookup | None = None) -> Experiment:
    """The one Experiment of a file or text; ValidationError if there are none or several."""
    experiments = load_experiments(source, config_maps=config_maps)
    label = os.fspath(source) if _is_path(source) else "the text"
    if not experiments:
        raise ValidationError([FieldError("", f"no Experiment in {label}: expected a document with "
                                          f"apiVersion: {API_VERSION} and kind: {KIND_EXPERIMENT}")])
    if len(experiments) > 1:
        names = ", ".join(e.name or "?" for e in experiments)
        raise ValidationError([FieldError("", f"{label} holds {len(experiments)} experiments ({names}); "
                                          "put one per file or load them with load_experiments")])
    return experiments[0]


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]  # libyaml's is ~10x faster
    """Block style for multi-line strings (scripts in templates stay readable)."""


def _str(dumper: Any, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump_yaml(exp: Experiment | dict[str, Any] | list[Experiment]) -> str:
    """YAML text of an experiment (or several, as a multi-document stream), wire names,
    unset fields left out; ``load_experiments(dump_yaml(x))`` gives ``x`` back."""
    items = exp if isinstance(exp, list) else [exp]
    docs = [e.to_dict() if isinstance(e, Experiment) else e for e in items]
    return yaml.dump_all(docs, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True,
                         explicit_start=len(docs) > 1)
