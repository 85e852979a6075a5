"""Helpers of the exported train.py: the typed settings, the process group, the data, the teacher's cached logits,
the weights and checkpoints, and the report (metrics.json and the release evidence).

Written by `kd-skill export` beside train.py; they need torch, numpy and (for config.yaml) pyyaml, never the package."""


class RecipeError(ValueError):
    """A bad setting or input: reported as one line naming it, exit status 2."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
