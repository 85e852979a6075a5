"""Options of a quick distillation, with the reason behind each default (no torch import here)."""

from __future__ import annotations

from itertools import pairwise
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_HIDDEN_WEIGHTS = 20_000_000  # about 80 MB of float32 per run: ample for a CPU experiment, safe for a shared server

Method = Literal["response", "feature", "relation", "cascade", "auto"]
Topology = Literal["teacher_student", "ensemble", "online", "self"]


class DistillConfig(BaseModel):
    """Run a small, real teacher -> student distillation on the CPU and compare it with a from-scratch student."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(
        "digits",
        max_length=1000,
        description=(
            "'digits' (bundled with scikit-learn) or a path to .npz (X_train, y_train, X_test, y_test, optional "
            "X_unlabeled, groups_test) or .csv"
        ),
    )
    label_column: str | None = Field(
        None, max_length=200, description="Label column of a .csv dataset (default: the last column)"
    )
    test_fraction: float = Field(
        0.25, ge=0.05, le=0.5, description="Share held out for testing when a .csv or digits has no split"
    )
    val_fraction: float = Field(
        0.15, ge=0.05, le=0.5, description="Share of training data carved out for tuning T and the loss weight"
    )
    labeled_fraction: float = Field(
        1.0,
        ge=0.01,
        le=1.0,
        description=(
            "Keep this share of training labels; the rest becomes the unlabeled transfer set (simulates the "
            "semi-supervised case)"
        ),
    )
    teacher: str = Field(
        "train",
        max_length=1000,
        description=(
            "'train' to train one here, or a path: precomputed teacher logits (.npz with logits_train for every "
            "X_train row, logits_test, and logits_unlabeled when X_unlabeled is given), safetensors weights of the "
            "runner's own net (architecture from the file's kd_arch/kd_hidden metadata, else arch and "
            "teacher_hidden), or TorchScript (.pt/.ts; a program: over MCP only when the server runs with "
            "--allow-torchscript)"
        ),
    )
    arch: Literal["mlp", "cnn", "cnn1d", "auto"] = Field(
        "auto",
        description=(
            "mlp, cnn (square image inputs), cnn1d (ordered signals), or auto (cnn1d when input_layout is sequence, "
            "cnn for feature/attention on images, else mlp)"
        ),
    )
    input_layout: Literal["flat", "sequence"] = Field(
        "flat",
        description=(
            "flat: unordered features (tabular, or square images); sequence: the columns are ordered in time or "
            "space (a signal, a time series): auto then picks a 1-D CNN"
        ),
    )
    standardize: Literal["auto", "per_feature", "global", "none"] = Field(
        "auto",
        description=(
            "Feature scaling fitted on training inputs only and saved with the student: auto = per_feature for "
            "tabular data, one global mean/std for images and sequences; raw scales let large columns dominate"
        ),
    )
    teacher_hidden: list[int] = Field(
        [256, 256],
        min_length=1,
        max_length=6,
        description=(
            "Teacher MLP hidden sizes (CNN: channels; a CNN teacher defaults to [32, 32] when this is not given)"
        ),
    )
    student_hidden: list[int] | None = Field(
        None,
        min_length=1,
        max_length=6,
        description=(
            "Student hidden sizes; default from target_compression (a given teacher of unknown size, precomputed "
            "logits: the largest that fits the data and the budget)"
        ),
    )
    target_compression: float = Field(
        25.0,
        ge=1,
        le=10000,
        description=(
            "Teacher params / student params when student_hidden is not given (25x: small enough to matter, big "
            "enough to learn)"
        ),
    )
    method: Method = Field(
        "response",
        description=(
            "response (Hinton KD), feature (FitNets hint / attention), relation (RKD + similarity-preserving), "
            "cascade, auto (ask recommend_method)"
        ),
    )
    response_loss: Literal["kd", "dkd"] = Field(
        "kd", description="Response method's soft loss: Hinton KD, or decoupled KD (DKD, Zhao et al. 2022)"
    )
    feature_loss: Literal["fitnet", "attention"] = Field(
        "fitnet", description="Feature method: FitNets hint, or attention transfer (both nets CNN)"
    )
    relation_loss: Literal["rkd", "sp"] = Field(
        "sp",
        description=(
            "Relation method: RKD distance+angle or similarity-preserving (measured about +2.5 points over logit KD "
            "on a capacity-limited student)"
        ),
    )
    topology: Topology = Field(
        "teacher_student",
        description=(
            "teacher_student, ensemble (several teachers), online (deep mutual learning), self (born-again generations)"
        ),
    )
    num_teachers: int = Field(3, ge=2, le=8, description="Ensemble size")
    ensemble_weights: list[float] | None = Field(
        None,
        min_length=2,
        max_length=8,
        description="Teacher weights for the ensemble (default: by validation accuracy)",
    )
    num_peers: int = Field(2, ge=2, le=4, description="Online topology: peers trained together")
    generations: int = Field(2, ge=1, le=5, description="Self topology: born-again generations")
    temperature: float | None = Field(
        None,
        ge=0.5,
        le=50,
        description=(
            "Fix T; default: tuned on the validation split over temperature_grid (the scratch student then gets as "
            "many learning rates, so both sides are selected from equally many trials)"
        ),
    )
    kd_loss_weight: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Weight of the soft (KD) term, the hard CE gets 1 - weight; default: tuned over weight_grid",
    )
    temperature_grid: list[float] = Field(
        [2.0, 4.0, 8.0],
        min_length=1,
        max_length=8,
        description="Temperatures tried when T is not fixed (4 was never clearly harmful in our measurements)",
    )
    weight_grid: list[float] = Field(
        [0.9],
        min_length=1,
        max_length=4,
        description="kd_loss_weight values tried when not fixed (0.5 vs 0.9 made no measurable difference here)",
    )
    augment: Literal["none", "mixup", "noise"] = Field(
        "none", description="Function matching (Beyer et al. 2022): teacher and student see the same augmented input"
    )
    epochs: int = Field(
        120,
        ge=1,
        le=2000,
        description=(
            "Student epochs, the same for scratch and distilled (paired budget); distillation needs the longer "
            "schedule, early stopping ends scratch sooner"
        ),
    )
    teacher_epochs: int = Field(
        200,
        ge=1,
        le=2000,
        description=(
            "Most epochs for a teacher trained here: it trains first, until validation accuracy stops improving "
            "(the rules' teacher_patience), within its guaranteed share of the budget"
        ),
    )
    batch_size: int = Field(64, ge=8, le=4096)
    learning_rate: float = Field(3e-3, ge=1e-6, le=1.0)
    patience: int = Field(
        30, ge=1, le=1000, description="Stop a phase after this many epochs without validation improvement"
    )
    seed: int = Field(0, ge=0, le=2**31 - 1)
    seeds: int = Field(
        1,
        ge=1,
        le=10,
        description=(
            "Paired seeds; with 3 or more (the runner rules' seed_floor_for_verdict) the report gives a 95 percent "
            "interval of the mean gain (seeds and test rows) and a verdict; fewer give the intervals and no verdict"
        ),
    )
    alpha: float = Field(
        0.5, ge=0, le=1, description="Size-versus-accuracy priority for the distillation score (kd_choose_alpha)"
    )
    positive_class: int = Field(1, ge=0, description="Favourable class for the parity check when groups_test is given")
    cascade_threshold: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Confidence above which the cascade's student answers (default: the rule's threshold, 0.9)",
    )
    time_budget_s: float = Field(
        60, ge=1, le=600, description="Hard cap on wall time; the run stops cleanly and reports what it has"
    )
    fit_to_budget: bool = Field(
        True,
        description=(
            "Plan the run from measured steps before training: the teacher first (early stopping, a guaranteed "
            "share), then the students; when the full experiment cannot fit time_budget_s, cut trials, then seeds, "
            "then student epochs (and say so), or refuse with the budget that would fit, instead of stopping "
            "part-way"
        ),
    )
    threads: int | None = Field(
        None,
        ge=1,
        le=256,
        description=(
            "torch threads for this run, restored afterwards (default: chosen from the work per step: 1 for nets "
            "this small)"
        ),
    )
    output_dir: str | None = Field(
        None, max_length=1000, description="Folder for artifacts (created fresh; default kd_runs/<time>-<id>)"
    )
    save_artifacts: bool = Field(True, description="Write student weights, report JSON and the PNG")
    device: Literal["auto", "cpu", "cuda", "mps"] = Field(
        "auto",
        description=(
            "Where to train: auto uses an accelerator when torch sees one (CUDA, then Apple MPS), else the CPU; "
            "cuda or mps is refused when not available"
        ),
    )

    @model_validator(mode="after")
    def _check(self) -> DistillConfig:
        if self.ensemble_weights is not None and len(self.ensemble_weights) != self.num_teachers:
            raise ValueError(
                f"ensemble_weights has {len(self.ensemble_weights)} values but num_teachers is {self.num_teachers}"
            )
        if self.ensemble_weights is not None and (min(self.ensemble_weights) < 0 or sum(self.ensemble_weights) <= 0):
            raise ValueError("ensemble_weights must be non-negative with a positive sum")
        for name, sizes in (("teacher_hidden", self.teacher_hidden), ("student_hidden", self.student_hidden or [])):
            if any(h < 1 or h > 4096 for h in sizes):
                raise ValueError(f"{name}: hidden sizes must lie in 1..4096; got {sizes}")
        # a quick distill is a CPU experiment: refuse nets whose hidden-to-hidden weights alone pass the cap
        for name, hidden, copies in (
            ("teacher_hidden", self.teacher_hidden, self.num_teachers if self.topology == "ensemble" else 1),
            ("student_hidden", self.student_hidden or [], self.num_peers if self.topology == "online" else 1),
        ):
            weights = copies * sum(a * b for a, b in pairwise(hidden))
            if weights > MAX_HIDDEN_WEIGHTS:
                raise ValueError(
                    f"{name} {hidden} needs about {weights:,} hidden weights (x{copies} nets); a quick distill allows "
                    f"{MAX_HIDDEN_WEIGHTS:,}"
                )
        if any(not 0.5 <= t <= 50 for t in self.temperature_grid):
            raise ValueError("temperature_grid values must lie in 0.5..50")
        if any(not 0 <= w <= 1 for w in self.weight_grid):
            raise ValueError("weight_grid values must lie in 0..1")
        return self
