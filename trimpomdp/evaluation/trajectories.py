"""Belief tracking along real PRM score sequences, its analysis, and the notebooks' figures.

:func:`track` runs the controller's belief tracking on many solutions at once (numpy over
solutions, a loop over steps). ``mode="router"`` reproduces
:class:`~trimpomdp.routing.router.StepRouter` with :func:`~trimpomdp.routing.pomdp.pomdp_router`
exactly (same beliefs, same actions; checked against :func:`track_with_router`, the plain
``decide`` loop): each real step is treated as the next draft after the router's decision, a
regenerated draft's score leaves min/product (it counts as 1.0). ``mode="passive"`` tracks the
process that actually wrote the data (every step kept: the filter predicts with *continue*) over
the whole solution, and records the action the policy would have taken at each step (< the
horizon) from that belief.

Figures take an optional ``ax`` and return it; matplotlib is imported inside the functions.

The concepts live in their own modules (:mod:`~trimpomdp.evaluation.score_table`,
:mod:`~trimpomdp.evaluation.tracking`, :mod:`~trimpomdp.evaluation.separation`,
:mod:`~trimpomdp.evaluation.figures`, :mod:`~trimpomdp.evaluation.policy_maps`,
:mod:`~trimpomdp.evaluation.studies`); this module gathers them for the notebooks (``tj.``).
"""
from __future__ import annotations

from trimpomdp.evaluation.figures import (
    pick_examples,
    plot_filter_vs_release,
    plot_regeneration_profile,
    plot_roc,
    plot_score_paths,
    plot_simplex_trajectories,
)
from trimpomdp.evaluation.policy_maps import (
    action_map,
    plot_policy_grid,
    plot_regenerate_regions,
    plot_regenerate_share,
    regenerate_share,
)
from trimpomdp.evaluation.score_table import (  # noqa: F401  # noqa: F401
    DUMP,
    SAMPLE,
    ScoreTable,
    load_scores,
)
from trimpomdp.evaluation.separation import (
    auroc,
    auroc_bootstrap,
    auroc_table,
    separation_scores,
)
from trimpomdp.evaluation.studies import (
    learned_checkpoints,
    release_measured_curves,
    simulate_policies,
)
from trimpomdp.evaluation.tracking import (  # noqa: F401  # noqa: F401
    MODES,
    RULES,
    BeliefTracks,
    Disagreement,
    density_batch,
    disagreement,
    q_batch,
    regeneration_profile,
    track,
    track_with_router,
)

__all__ = ["BeliefTracks", "Disagreement", "ScoreTable", "action_map", "auroc", "auroc_bootstrap",
           "auroc_table", "density_batch", "disagreement", "learned_checkpoints", "load_scores",
           "pick_examples", "plot_filter_vs_release", "plot_policy_grid",
           "plot_regenerate_regions", "plot_regenerate_share", "plot_regeneration_profile",
           "plot_roc", "plot_score_paths", "plot_simplex_trajectories", "q_batch",
           "regenerate_share", "regeneration_profile", "release_measured_curves",
           "separation_scores", "simulate_policies", "track", "track_with_router"]
