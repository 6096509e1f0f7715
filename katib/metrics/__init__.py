"""Metrics collection (TEXT/JSON parsing, live collectors) and metric strategies."""

from katib.metrics.collector import FileTailer, LineCollector
from katib.metrics.parsers import DEFAULT_FILTER, JSON, TEXT, LineParser, parse_lines
from katib.metrics.strategies import BestTrial, best_trial, fold, metric_value, objective_value

__all__ = [
    "DEFAULT_FILTER",
    "TEXT",
    "JSON",
    "LineParser",
    "parse_lines",
    "LineCollector",
    "FileTailer",
    "fold",
    "metric_value",
    "objective_value",
    "best_trial",
    "BestTrial",
]
