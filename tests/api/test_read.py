"""Files of any encoding, size or shape get an answer: an experiment or a clear refusal."""

from __future__ import annotations

import codecs
import copy
from pathlib import Path

import pytest
import yaml

from katib.api import _read
from katib.api.loader import MAX_BYTES, ConfigMapLookup, load_experiment, load_experiments
from katib.api.validation import prepare
from katib.cli import main
from katib.errors import ValidationError
from tests.api.factory import BASE

# A non-ASCII character, so that a wrong decoding cannot pass unnoticed.
EXP = yaml.safe_dump({**BASE, "metadata": {**BASE["metadata"], "annotations": {"owner": "José"}}},
                     sort_keys=False, allow_unicode=True)


def _refusal(path: Path) -> str:
    with pytest.raises(ValidationError) as info:
        load_experiment(path)
    (err,) = info.value.errors
    return str(err)


@pytest.mark.parametrize("data", [
    EXP.encode("utf-8"),
    codecs.BOM_UTF8 + EXP.encode("utf-8"),
    codecs.BOM_UTF16_LE + EXP.encode("utf-16-le"),  # what Windows editors save as "Unicode"
    codecs.BOM_UTF16_BE + EXP.encode("utf-16-be"),
    EXP.encode("utf-16-le"),  # YAML 1.2 §5.2: recognised by the zeros without a byte order mark
    EXP.encode("utf-16-be"),
    codecs.BOM_UTF32_LE + EXP.encode("utf-32-le"),
    EXP.encode("utf-32-be"),
], ids=["utf-8", "utf-8-bom", "utf-16-le-bom", "utf-16-be-bom", "utf-16-le", "utf-16-be", "utf-32-le-bom",
        "utf-32-be"])
def test_encodings_yaml_allows_are_read(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "exp.yaml"
    path.write_bytes(data)
    exp = load_experiment(path)
    assert exp.name == "demo" and exp.metadata.annotations == {"owner": "José"}


def test_latin1_is_refused_with_offset_line_and_fix(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    data = EXP.encode("latin-1")
    path.write_bytes(data)
    offset = data.index("é".encode("latin-1"))
    line = EXP[:EXP.index("é")].count("\n") + 1
    message = _refusal(path)
    assert message.startswith(f"{path}: is not valid UTF-8 text: byte {offset} (line {line}) is 0xe9")
    assert "save the file as UTF-8" in message


def test_bad_utf16_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "u16.yaml"
    path.write_bytes(codecs.BOM_UTF16_LE + "a: b\n".encode("utf-16-le") + b"\x00\xd8")  # a lone high surrogate
    assert "is not valid UTF-16-LE text: byte 12" in _refusal(path)


@pytest.mark.parametrize("data", [bytes(range(256)) * 8, b"\x89PNG\r\n\x1a\n" + bytes(64), b"\x7fELF\x02\x01\x01\x00"],
                         ids=["bytes", "png", "elf"])
def test_binary_files_are_refused(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "exp.yaml"
    path.write_bytes(data)
    assert "this is a binary file" in _refusal(path)


def test_files_over_the_limit_are_refused_before_parsing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "big.yaml"
    with path.open("wb") as f:
        f.write(EXP.encode())
        f.write(b"#" * (MAX_BYTES - len(EXP)) + b"\n")  # one byte too many; a comment YAML would accept

    def no_parsing(*args: object, **kwargs: object) -> None:
        raise AssertionError("parsed a file over the limit")

    monkeypatch.setattr(_read, "_parse", no_parsing)
    message = _refusal(path)
    assert "experiment files may be at most 4.0 MiB" in message and "Kubernetes stores objects of at most" in message
    with pytest.raises(ValidationError, match="at most 4.0 MiB"):
        ConfigMapLookup.from_files(path)
    with pytest.raises(ValidationError, match="at most 4.0 MiB"):
        load_experiments(EXP + "#" * MAX_BYTES)


def test_a_file_at_the_limit_is_read(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(EXP.encode() + b"#" * (MAX_BYTES - len(EXP.encode()) - 1) + b"\n")
    assert load_experiment(path).name == "demo"


@pytest.mark.parametrize("command", ["validate", "run"])
def test_cli_refuses_undecodable_and_huge_files_with_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                           command: str) -> None:
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes(EXP.encode("latin-1"))
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (MAX_BYTES + 1))
    db = ["--db", f"sqlite:///{tmp_path}/k.db"] if command == "run" else []
    for path, message in ((latin1, "is not valid UTF-8 text"), (big, "at most 4.0 MiB")):
        assert main([command, str(path), *db]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
    good = tmp_path / "exp.yaml"
    good.write_text(EXP, encoding="utf-8")
    assert main(["validate", str(good), "--config-map", str(latin1)]) == 2
    assert f"{latin1}: is not valid UTF-8 text" in capsys.readouterr().err


def _laughs(levels: int) -> str:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def test_alias_bombs_are_refused() -> None:
    with pytest.raises(ValidationError, match=r"expands to more than 100000 values through YAML aliases"):
        load_experiments(_laughs(9))  # a billion values from 600 bytes


def test_a_few_aliases_are_fine_and_copied_apart() -> None:
    text = EXP.replace("restartPolicy: Never", "restartPolicy: Never\n            nodeSelector: &sel {zone: a}")
    text += "  metricsCollectorSpec:\n    collector: {kind: Custom, customCollector: {name: c, x: *sel}}\n"
    exp = load_experiment(text)
    assert exp.spec.trial_template is not None and exp.spec.trial_template.trial_spec is not None
    selector = exp.spec.trial_template.trial_spec["spec"]["template"]["spec"]["nodeSelector"]
    assert exp.spec.metrics_collector_spec is not None and exp.spec.metrics_collector_spec.collector is not None
    custom = exp.spec.metrics_collector_spec.collector.custom_collector
    assert custom is not None and custom["x"] == selector == {"zone": "a"}
    selector["zone"] = "b"
    assert custom["x"] == {"zone": "a"}  # one place changed, not both


@pytest.mark.parametrize("text", [
    "a: " + "[" * 150 + "]" * 150,
    "{" + '"a": {' * 150 + "}" * 151,  # JSON
    "a: &x [*x]\n",  # an alias inside the node it names
    "a:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 150)),
], ids=["flow", "json", "self-alias", "block"])
def test_deep_nesting_is_refused(text: str) -> None:
    with pytest.raises(ValidationError, match=r"nested more than 100 levels deep"):
        load_experiments(text)


def test_yaml_values_json_cannot_hold_are_refused_and_dates_stay_text() -> None:
    for tagged, tag in (("!!binary aGk=", "!!binary"), ("!!set {a}", "!!set"), ("!!timestamp 2020-01-01", "!!timestamp")):
        with pytest.raises(ValidationError, match=f"{tag} values are not allowed"):
            load_experiments(EXP.replace("name: demo", f"name: demo\n  labels: {{x: {tagged}}}"))
    exp = load_experiment(EXP.replace("name: demo", "name: demo\n  labels: {since: 2020-01-01}"))
    assert exp.metadata.labels == {"since": "2020-01-01"}


def test_numbers_python_cannot_read_are_refused() -> None:
    with pytest.raises(ValidationError, match="more than 4300 digits"):
        load_experiments(EXP.replace("maxTrialCount: 6", "maxTrialCount: " + "9" * 5000))
    with pytest.raises(ValidationError, match="more than 4300 digits"):
        load_experiments('{"a": ' + "9" * 5000 + "}")


def test_a_list_as_a_mapping_key_is_a_syntax_error() -> None:
    with pytest.raises(ValidationError, match=r"<text>:1:\d+: not valid YAML/JSON: .*unhashable key"):
        load_experiments("? [a, b]\n: 1\n")


@pytest.mark.parametrize("body", ["[" * 900 + "]" * 900, "&x [*x]", "\n  " + _laughs(9).replace("\n", "\n  ")],
                         ids=["deep", "self-alias", "laughs"])
def test_configmap_templates_get_the_same_limits(body: str) -> None:
    template = ("apiVersion: batch/v1\nkind: Job\nmetadata:\n  annotations:\n    x: ${trialParameters.learningRate}"
                " ${trialParameters.layers} ${trialParameters.optimizer}\nspec:\n  " + body + "\n")
    doc = copy.deepcopy(BASE)
    doc["spec"]["trialTemplate"] = {**{k: v for k, v in doc["spec"]["trialTemplate"].items() if k != "trialSpec"},
                                    "configMap": {"configMapName": "t", "configMapNamespace": "default",
                                                  "templatePath": "job.yaml"}}
    lookup = ConfigMapLookup([{"kind": "ConfigMap", "metadata": {"name": "t"}, "data": {"job.yaml": template}}])
    with pytest.raises(ValidationError) as info:
        prepare(load_experiment(yaml.safe_dump(doc)), config_maps=lookup)
    assert any(e.path == "spec.trialTemplate.configMap" and ("nested more than 100" in e.message or
                                                            "through YAML aliases" in e.message)
               for e in info.value.errors), info.value.errors
