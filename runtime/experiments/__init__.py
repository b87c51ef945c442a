"""Validation experiments: each rule whose claim concerns training dynamics, measured.

Every experiment runs the buggy recipe and the fixed one on the same seed with the tiny
reference trainer and checks the claimed effect with an explicit margin. ``recipecheck
validate`` runs them; :func:`evidence` gives the measured one-line summary per rule code
(from the stored run in ``_evidence_data.py`` / ``EVIDENCE.md``, or live with ``run=True``).
"""

from __future__ import annotations

from typing import Iterable, Optional, Union

import torch

from .base import Experiment, Result, Skipped, catalog, format_value, select

__all__ = ["Experiment", "Result", "Skipped", "catalog", "select", "run_experiments", "evidence", "format_value"]


def run_experiments(
    codes: Iterable[str] = (), *, seed: int = 0, device: Union[str, torch.device] = "cpu"
) -> list[tuple[Experiment, Result]]:
    """Run the experiments selected by ``codes`` (all when empty); ``(experiment, result)`` pairs."""
    return [(exp, exp.run(seed, device)) for exp in select(codes)]


def evidence(
    codes: Iterable[str] = (), *, run: bool = False, seed: int = 0, device: Union[str, torch.device] = "cpu"
) -> dict[str, str]:
    """Measured evidence per rule code: ``{"RC201": "lr_after_epoch_1: 0.125 (...) vs 0.5 (...) [pass]", ...}``.

    By default the summaries come from the stored reference run (``_evidence_data.py``,
    written by ``recipecheck validate --write-evidence``) so no training happens; with
    ``run=True`` the selected experiments are run now.
    """
    wanted = [c.lower() for c in codes]
    if run:
        return {exp.rule: exp.summary(res) for exp, res in run_experiments(codes, seed=seed, device=device)}
    from ._evidence_data import EVIDENCE

    return {
        code: entry["summary"]
        for code, entry in EVIDENCE.items()
        if not wanted or any(code.lower().startswith(w) for w in wanted)
    }


def stored_evidence(code: str) -> Optional[dict]:
    """The stored record of one rule's experiment (claim, summary, details, buggy, fixed), or None."""
    from ._evidence_data import EVIDENCE

    return EVIDENCE.get(code)
