"""Evaluation: cost/accuracy metrics (DESIGN.md §3), answer grading, curves, plots and reports.

Light imports only; matplotlib loads inside :mod:`trimpomdp.evaluation.plots` functions.
"""
from trimpomdp.evaluation.metrics import (
                                          CurvePoint,
                                          References,
                                          budget_accuracy,
                                          cpt,
                                          ibc,
                                          ibc_summary,
                                          metrics_row,
                                          pgr,
)

__all__ = ["CurvePoint", "References", "budget_accuracy", "cpt", "ibc", "ibc_summary",
           "metrics_row", "pgr"]
