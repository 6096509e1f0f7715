"""TEXT and JSON line parsing, upstream's default filter and our timestamp fixes."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from katib.metrics.parsers import (
    DEFAULT_FILTER,
    JSON,
    LineParser,
    compile_filters,
    parse_lines,
    parse_rfc3339,
)

READ_AT = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)


def values(parser: LineParser, line: str) -> list[tuple[str, str]]:
    parsed = parser.parse(line, READ_AT)
    return parsed.values if parsed else []


@pytest.mark.parametrize(
    "line, expected",
    [
        ("loss=0.3", [("loss", "0.3")]),
        ("accuracy=.98", [("accuracy", ".98")]),
        ("Score=-7.53e-05", [("Score", "-7.53e-05")]),
        ("epoch 3: loss = 0.25, accuracy=0.9 lr=1E+3", [("loss", "0.25"), ("accuracy", "0.9")]),
        ("loss=0.1 loss=0.2", [("loss", "0.1"), ("loss", "0.2")]),  # FindAll semantics
        ("val-loss=4", [("val-loss", "4")]),
        ("loss=", []),  # the default regex matches an empty value; we drop it
        ("nothing to see", []),
    ],
)
def test_default_text_filter(line: str, expected: list[tuple[str, str]]) -> None:
    parser = LineParser(["loss", "accuracy", "val-loss", "Score"])
    assert values(parser, line) == expected


def test_lines_not_mentioning_a_metric_are_skipped_even_if_the_regex_matches() -> None:
    parser = LineParser(["loss"])
    assert parser.parse("lr=0.1 momentum=0.9", READ_AT) is None


def test_custom_filters_group_one_is_name_group_two_is_value() -> None:
    parser = LineParser(["loss", "acc"], filters=[r"(\w+):\s*([\d.]+)", r"\{(acc)\|([\d.]+)\}"])
    assert values(parser, "loss: 0.5 junk {acc|0.75}") == [("loss", "0.5"), ("acc", "0.75")]


def test_custom_filter_can_capture_string_values() -> None:
    parser = LineParser(["Genotype"], filters=[r"(Genotype)=(.*)"])
    assert values(parser, "Genotype=Genotype(normal=[('sep_conv', 0)])") == [
        ("Genotype", "Genotype(normal=[('sep_conv', 0)])")
    ]


@pytest.mark.parametrize("bad", ["(only-one-group)", "(unclosed"])
def test_bad_filters_raise_value_error_naming_the_regex(bad: str) -> None:
    with pytest.raises(ValueError, match=r"metricsFormat\[1\]"):
        compile_filters([DEFAULT_FILTER, bad])


def test_leading_rfc3339_timestamp_is_used_and_stripped() -> None:
    parser = LineParser(["loss"])
    parsed = parser.parse("2024-05-06T07:08:09.123456789Z loss=0.3", READ_AT)
    assert parsed is not None
    assert parsed.timestamp == datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=timezone.utc)
    assert parsed.values == [("loss", "0.3")]


def test_line_without_timestamp_gets_the_read_time_not_zero_time() -> None:
    parsed = LineParser(["loss"]).parse("loss=0.3", READ_AT)
    assert parsed is not None and parsed.timestamp == READ_AT


def test_line_without_timestamp_and_without_read_time_uses_the_clock() -> None:
    parser = LineParser(["loss"], clock=lambda: READ_AT)
    parsed = parser.parse("loss=0.3")
    assert parsed is not None and parsed.timestamp == READ_AT


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2024-01-01T00:00:00Z", datetime(2024, 1, 1, tzinfo=timezone.utc)),
        ("2024-01-01T02:00:00.5+02:00", datetime(2024, 1, 1, 0, 0, 0, 500000, tzinfo=timezone.utc)),
        ("2024-01-01T00:00:00.000001-00:30", datetime(2024, 1, 1, 0, 30, 0, 1, tzinfo=timezone.utc)),
        ("2024-13-01T00:00:00Z", None),
        ("2024-01-01 00:00:00Z", None),
        ("2024-01-01T00:00:00", None),  # RFC 3339 requires a zone
        ("epoch", None),
    ],
)
def test_parse_rfc3339(text: str, expected: datetime | None) -> None:
    assert parse_rfc3339(text) == expected


@pytest.mark.parametrize(
    "line, step",
    [
        ("step=3 loss=0.1", 3),
        ("epoch=4 loss=0.1", 4),
        ("epoch=4 step=40 loss=0.1", 40),  # step wins over epoch
        ("epoch=4.0 loss=0.1", 4),
        ("epoch=0.5 loss=0.1", None),
        ("loss=0.1", None),
    ],
)
def test_text_step_from_step_or_epoch_on_the_same_line(line: str, step: int | None) -> None:
    parsed = LineParser(["loss"]).parse(line, READ_AT)
    assert parsed is not None and parsed.step == step


def test_step_is_also_a_metric_when_asked_for() -> None:
    assert values(LineParser(["loss", "epoch"]), "epoch=2 loss=1") == [("epoch", "2"), ("loss", "1")]


def test_json_numeric_and_string_values_count() -> None:
    parser = LineParser(["loss", "acc", "name"], JSON)
    line = '{"loss": 0.25, "acc": "0.5", "epochs": 3, "name": "x", "ignored": 1}'
    assert values(parser, line) == [("loss", "0.25"), ("acc", "0.5"), ("name", "x")]


def test_json_integers_bools_nulls_and_objects() -> None:
    parser = LineParser(["a", "b", "c", "d"], JSON)
    assert values(parser, '{"a": 3, "b": true, "c": null, "d": {"x": 1}}') == [("a", "3")]


@pytest.mark.parametrize(
    "stamp, expected",
    [
        ('"2024-01-01T00:00:00.25Z"', datetime(2024, 1, 1, 0, 0, 0, 250000, tzinfo=timezone.utc)),
        ("1700000000.5", datetime(2023, 11, 14, 22, 13, 20, 500000, tzinfo=timezone.utc)),
        ('"1700000000.000002"', datetime(2023, 11, 14, 22, 13, 20, 2, tzinfo=timezone.utc)),
        ("1700000000", datetime(2023, 11, 14, 22, 13, 20, tzinfo=timezone.utc)),
        ('"garbage"', READ_AT),
    ],
)
def test_json_timestamp_rfc3339_or_float_epoch(stamp: str, expected: datetime) -> None:
    parsed = LineParser(["loss"], JSON).parse(f'{{"loss": 1, "timestamp": {stamp}}}', READ_AT)
    assert parsed is not None and parsed.timestamp == expected


def test_json_step_key() -> None:
    parsed = LineParser(["loss"], JSON).parse('{"loss": 1, "step": 12}', READ_AT)
    assert parsed is not None and parsed.step == 12


@pytest.mark.parametrize("line", ["not json", "[1, 2]", '{"other": 1}', ""])
def test_json_lines_without_wanted_values_are_skipped(line: str) -> None:
    assert LineParser(["loss"], JSON).parse(line, READ_AT) is None


def test_constructor_checks() -> None:
    with pytest.raises(ValueError, match="metric_names"):
        LineParser([])
    with pytest.raises(ValueError, match="format"):
        LineParser(["loss"], "XML")
    with pytest.raises(ValueError, match="JSON"):
        LineParser(["loss"], JSON, filters=[DEFAULT_FILTER])


def test_parse_lines_whole_output_keeps_order_and_explicit_steps() -> None:
    rows = parse_lines(["epoch=1 loss=3", "noise", "epoch=2 loss=2", "loss=1"], ["loss"])
    assert [(r.value, r.step) for r in rows] == [("3", 1), ("2", 2), ("1", None)]
    assert len({r.timestamp for r in rows}) == 1


def test_linear_default_filter_matches_exactly_what_the_regex_finds() -> None:
    import random
    import re

    from katib.metrics.parsers import _default_matches

    rng = random.Random(7)
    alphabet = "ab1-|=. eE+_\t,x9"
    rx = re.compile(DEFAULT_FILTER)
    for _ in range(20000):
        line = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 14)))
        expected = [(m.span(), m.group(1), m.group(2)) for m in rx.finditer(line)]
        got = [(m.span(), m.group(1), m.group(2)) for m in _default_matches(line)]
        assert got == expected, line


def test_default_filter_is_fast_on_a_huge_word() -> None:
    import time

    parser = LineParser(["loss"])
    start = time.perf_counter()
    assert values(parser, "loss " + "x" * 500_000 + " loss=1") == [("loss", "1")]
    assert time.perf_counter() - start < 2
