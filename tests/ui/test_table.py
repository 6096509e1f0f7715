"""The trial table's filters, sorting and pages (katib.ui.table) on plain ExperimentData."""

from __future__ import annotations

import pytest

from katib.ui import table
from katib.visualization.data import ExperimentData, Parameter, TrialPoint


def data() -> ExperimentData:
    rows = [("a-1", "Succeeded", 0.5, "adam", 0.25), ("a-2", "Failed", 0.125, "sgd", None),
            ("b-3", "Succeeded", 0.75, "adam", 0.5), ("b-4", "Killed", None, "sgd", None)]
    trials = [TrialPoint(i, name, state, {"lr": lr, "opt": opt} if lr is not None else {"opt": opt},
                         value, {"loss": value} if value is not None else {})
              for i, (name, state, lr, opt, value) in enumerate(rows)]
    return ExperimentData("e", "default", "loss", "minimize", None, "random",
                          [Parameter("lr", "double", 0.0, 1.0), Parameter("opt", "categorical", choices=("adam", "sgd"))],
                          ["loss"], trials)


def names(**kw: object) -> list[str]:
    return [r["name"] for r in table.query(data(), **kw)["rows"]]  # type: ignore[arg-type]


@pytest.mark.parametrize("column, expr, expected", [
    ("param:lr", ">=0.5", ["a-1", "b-3"]), ("param:lr", "<0.5", ["a-2"]), ("param:lr", "=0.75", ["b-3"]),
    ("param:lr", "0.1..0.5", ["a-1", "a-2"]), ("param:lr", "0.12", ["a-2"]), ("param:lr", "-", ["b-4"]),
    ("param:opt", "ADA", ["a-1", "b-3"]), ("param:opt", "=sgd", ["a-2", "b-4"]),
    ("state", "failed,killed", ["a-2", "b-4"]), ("name", "b-", ["b-3", "b-4"]), ("metric:loss", "-", ["a-2", "b-4"]),
])
def test_each_filter(column: str, expr: str, expected: list[str]) -> None:
    assert names(filters={column: expr}) == expected


def test_sorting_keeps_empty_values_last_either_way() -> None:
    assert names(sort="param:lr") == ["a-2", "a-1", "b-3", "b-4"]
    assert names(sort="param:lr", descending=True) == ["b-3", "a-1", "a-2", "b-4"]
    assert names(sort="value") == ["a-1", "b-3", "a-2", "b-4"]  # the objective: loss
    assert names(sort="number", descending=True) == ["b-4", "b-3", "a-2", "a-1"]


def test_pages_and_what_a_page_says() -> None:
    page = table.query(data(), filters={"state": "Succeeded"}, offset=1, limit=1)
    assert (page["total"], page["matched"], [r["name"] for r in page["rows"]]) == (4, 2, ["b-3"])
    assert page["best"] == "a-1" and page["rows"][0]["cells"] == {"param:lr": "0.75", "param:opt": "adam",
                                                                  "metric:loss": "0.5", "duration": ""}


@pytest.mark.parametrize("kw, message", [
    ({"filters": {"param:lr": ">x"}}, "filter on lr: 'x' is not a number"),
    ({"filters": {"nope": "1"}}, "filter: unknown column 'nope'"),
    ({"sort": "nope"}, "sort: unknown column 'nope'"),
    ({"limit": 0}, "limit: expected 1 to 500 rows"),
    ({"offset": -1}, "offset: expected 0 or more"),
])
def test_bad_requests_name_what_is_wrong(kw: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        table.query(data(), **kw)  # type: ignore[arg-type]
