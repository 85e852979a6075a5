"""The scratch side's learning-rate search beyond the rules' factors.

Who trains beside whom is now written where it trains (stages.students): the scratch students of every seed over
the learning-rate search first, then the learners (distilled, online peers or born-again generations) of every
seed at the learning rate scratch selected for that seed.
"""

from __future__ import annotations

import numpy as np


def scratch_learning_rates(base: float, trials: int) -> list[float]:
    """`trials` rates spaced by factors of two around the base (lr/2, lr, 2 lr for three), for searches longer than
    the rules' lr_factors."""
    if trials == 1:
        return [base]
    return [float(base * f) for f in 2.0 ** np.linspace(-1, 1, trials)]
