"""Notebook 01's checkers (attention by hand): each runs the student's function on inputs built to
expose a known mistake, compares with helpers' own answer, and names the mistake it finds."""

from helpers.checks.lookup.gradients import check_query_gradients
from helpers.checks.lookup.queries import (
    check_averaging_query,
    check_balanced_query,
    check_copy_queries,
    check_selection_query,
)
from helpers.checks.lookup.recovery import check_recovery_matrix
from helpers.checks.lookup.softmax import check_softmax_attention

__all__ = [
    "check_averaging_query",
    "check_balanced_query",
    "check_copy_queries",
    "check_query_gradients",
    "check_recovery_matrix",
    "check_selection_query",
    "check_softmax_attention",
]
