"""Plots of an experiment's trials (public API filled in by the figures)."""
