"""The quick-distill report: one pydantic model, saved as JSON and returned as MCP structured output."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from skill.models import DiagnoseFailureResponse, QualityGatesResponse


class ModelMetrics(BaseModel):
    accuracy: float
    per_class_accuracy: dict[str, float]
    ece: float = Field(description="Expected calibration error, 15 equal-width bins")
    error_confidence: float | None = Field(description="Mean top probability on wrong predictions")
    params: int
    size_bytes: int
    latency_ms_batch1: float = Field(description="Median wall time of one forward pass on one sample, CPU")
    throughput_per_s_batch256: float
    reliability: list[list[float]] = Field(
        default_factory=list, description="Per non-empty confidence bin: [mean confidence, accuracy, count]"
    )


class Trial(BaseModel):
    """One trained student: which role, seed and setting, how it did on validation, and whether it was selected."""

    role: str = Field(description="scratch, distilled, peer (online) or generation (self)")
    seed: int
    learning_rate: float
    temperature: float | None = None
    kd_loss_weight: float | None = None
    generation: int | None = None
    val_accuracy: float
    epochs: int = Field(description="Epochs run before early stopping (or the stop)")
    stopped_by: str = Field(
        "early_stopping",
        description="Why it ended: early_stopping, epoch_cap, budget_share (its side's share of the time ended; the "
        "learners then train no more epochs), time_budget or cancelled",
    )
    steps: int = Field(
        description="Optimiser steps; scratch and distilled get the same number per epoch (step-matched)"
    )
    selected: bool = Field(description="Best on validation among its seed's trials of the same side")
    tied: bool = Field(
        False,
        description="Selected, but another trial of its seed and side was within the rules' tie_rows validation rows: "
        "the choice between them is noise",
    )


class CascadePoint(BaseModel):
    threshold: float
    accuracy: float
    share_to_teacher: float
    is_guidance_threshold: bool = Field(
        description="The threshold in use: the rule's 0.9 unless cascade_threshold was set"
    )


class SeedPair(BaseModel):
    seed: int
    scratch_accuracy: float
    distilled_accuracy: float
    gain_points: float


class Comparison(BaseModel):
    """Distilled versus scratch over paired seeds, with both sources of noise (see references/quick-distill.md)."""

    pairs: list[SeedPair]
    mean_gain_points: float
    std_gain_points: float | None = Field(description="Standard deviation of the per-seed gains (None with one seed)")
    seed_interval: list[float] | None = Field(
        description="95% paired t interval of the mean gain over seeds (scipy.stats.t); None with one seed"
    )
    test_interval: list[float] = Field(description="95% paired bootstrap interval over test rows of the mean gain")
    interval: list[float] = Field(
        description="Combined 95% interval: half-widths added in quadrature; the verdict reads this one"
    )
    mcnemar_p: float = Field(
        description="Exact McNemar test on the saved seed's paired test predictions (Dietterich 1998)"
    )
    verdict: Literal["gain", "loss", "no_gain", "no_verdict", "inconclusive"] = Field(
        description="gain/loss only when the combined interval excludes 0, the exact test over rows agrees and the "
        "teacher beats scratch; "
        "no_verdict below the rules' seed_floor_for_verdict paired seeds; "
        "inconclusive when the teacher is no better than a scratch student, or when the time budget stopped the "
        "distilled students short of the epochs the scratch students trained"
    )
    inconclusive_reason: Literal["teacher_no_better", "unequal_training"] | None = Field(
        None,
        description="Why the verdict is inconclusive: the teacher does not beat scratch beyond noise, or the two "
        "sides did not train alike (the budget cut the distilled students short); None otherwise",
    )
    statement: str
    teacher_interval: list[float] | None = Field(
        None,
        description="95% interval of teacher minus scratch accuracy, in points (seeds and test rows); "
        "a verdict about distillation needs its lower end above 0",
    )
    teacher_better: bool | None = Field(
        None, description="The teacher beats the scratch student beyond noise (None: no teacher to compare)"
    )
    scratch_mean_accuracy: float | None = Field(
        None,
        description="Scratch test accuracy, mean over the paired seeds (the headline; "
        "`scratch` holds the saved seed's model)",
    )
    distilled_mean_accuracy: float | None = Field(
        None, description="Distilled test accuracy, mean over the paired seeds (the headline)"
    )
    rows_test_p: float | None = Field(
        None,
        description="Exact McNemar (sign) test over test rows, each row counted once for the side its seeds got "
        "right more often (Dietterich 1998); gain or loss needs it below the rules' rows_test_alpha",
    )
    rows_favour_distilled: int | None = Field(
        None, description="Test rows the distilled students got right more often than scratch over the seeds"
    )
    rows_favour_scratch: int | None = Field(
        None, description="Test rows the scratch students got right more often than distilled over the seeds"
    )


class Settings(BaseModel):
    """What was used, for the saved student (seed `seed`): every number belongs to that model."""

    seed: int
    method: str
    method_reason: str
    topology: str
    reference: str = Field(
        description="What the 'teacher' slot, the compression ratio and the distillation score compare against"
    )
    arch: str
    input_layout: str
    standardize: str = Field(
        description="Feature scaling fitted on training inputs (per_feature, global or none), saved with the student"
    )
    teacher_hidden: list[int] | None
    student_hidden: list[int]
    temperature: float | None = Field(
        description="T of the saved distilled student (selected on validation for its seed)"
    )
    kd_loss_weight: float | None
    learning_rate: float = Field(description="Learning rate of the saved distilled student")
    scratch_learning_rate: float | None = Field(
        description="Learning rate of the scratch student it is compared with (selected on validation)"
    )
    temperature_tuned: bool = Field(description="True only when more than one T was tried and selected on validation")
    trials_per_side: int = Field(
        description="Validation-selected trials per seed, the same for scratch (learning rates) and distilled"
    )
    epochs: int = Field(description="Epochs planned per student (after any scaling to the budget)")
    epochs_run_distilled: int
    epochs_run_scratch: int
    steps_distilled: int
    steps_scratch: int
    teacher_epochs: int | None = Field(
        description=(
            "Most epochs for a teacher trained here (early stopping on validation ends it sooner); None for a given "
            "teacher"
        )
    )
    augment: str
    transfer_set_size: int
    stop_reason: str
    threads: int
    threads_reason: str
    time_estimate_s: float | None = Field(description="Estimated from measured training steps before the run")
    teacher_source: str = Field(
        "trained here",
        description="'trained here' (then teacher_epochs says how long), or 'given: ...' (logits or weights)",
    )
    teacher_epochs_run: int | None = Field(
        None, description="Epochs the teacher trained here (None for a given teacher)"
    )
    teacher_stopped_by: str | None = Field(
        None,
        description="Why the teacher here stopped: early_stopping (converged on validation), "
        "epoch_cap (teacher_epochs reached) or budget_share (its time share ended)",
    )
    student_size_reason: str = Field("", description="Why the student has this size")
    scratch_search: list[float] = Field(
        default_factory=list, description="Learning rates the scratch side searched per seed"
    )
    distilled_search: list[list[float]] = Field(
        default_factory=list,
        description="[T, kd weight] settings the distilled side searched per seed, "
        "each at the learning rate scratch selected for that seed",
    )
    distilled_lr_rule: str = Field("", description="How the distilled side's learning rate is chosen, and why")
    device: str = Field(
        "cpu", description="Where the nets trained (device auto resolves to an accelerator when there is one)"
    )


class Plan(BaseModel):
    """The budget plan: the teacher first, then as much of the student experiment as fits; what was cut, and why."""

    budget_s: float
    teacher_share_s: float | None = Field(
        description="Seconds the teacher may train (its guaranteed share, more when students need less)"
    )
    teacher_estimate_s: float | None = Field(
        description="Seconds for teacher_epochs epochs, from measured steps (early stopping ends sooner)"
    )
    students_estimate_s: float = Field(description="Seconds for the planned student stacks, from measured steps")
    full_estimate_s: float = Field(description="Seconds the full requested experiment would need")
    seeds: int
    trials_per_side: int
    epochs: int
    plateau_epoch: int | None = Field(
        None, description="Where a probe scratch student's validation accuracy stopped improving (when measured)"
    )
    expected_epochs: int | None = Field(
        None,
        description="Epochs per student stack the estimates count: the probe's plateau epoch times the rules' "
        "factor plus the patience, at most `epochs` (None: the cap itself)",
    )
    cuts: list[str] = Field(default_factory=list, description="What was cut to fit the budget, in the rules' cut order")
    replanned: list[str] = Field(
        default_factory=list,
        description="What was restored after the teacher and after the scratch students "
        "(time they did not use goes back to the rest of the experiment)",
    )


class WallTime(BaseModel):
    """Seconds per stage; scratch and distilled students train together in one stack, so they share `students`."""

    data: float = 0.0
    plan: float = Field(
        0.0, description="Architecture, method, thread choice and the time estimate (a few measured steps)"
    )
    teacher: float = 0.0
    students: float = 0.0
    evaluate: float = 0.0
    total: float = 0.0


class Artifacts(BaseModel):
    output_dir: str | None = None
    student_weights: str | None = None
    report: str | None = None
    plot: str | None = None
    scaler: str | None = Field(None, description="safetensors with 'mean' and 'std': feed the student (x - mean) / std")
    saved_student: str | None = Field(
        None,
        description=(
            "Which student the weights file holds: the distilled one, or scratch when distillation did not help"
        ),
    )


class DistillReport(BaseModel):
    dataset: str
    num_classes: int
    n_train: int
    n_val: int
    n_test: int
    teacher: ModelMetrics
    scratch: ModelMetrics | None
    distilled: ModelMetrics | None
    gain_points: float | None = Field(
        description=(
            "Distilled minus scratch test accuracy of the saved seed's pair, in points (see comparison for all seeds)"
        )
    )
    teacher_share_kept: float | None = Field(description="Distilled accuracy / teacher accuracy")
    compression_ratio: float | None
    alpha: float
    distillation_score: float | None
    trials: list[Trial]
    cascade: list[CascadePoint] | None = None
    comparison: Comparison | None = None
    verdict: str = Field("", description="What to do, in words")
    warnings: list[str] = Field(default_factory=list)
    diagnosis: DiagnoseFailureResponse | None = None
    quality_gates: QualityGatesResponse | None = None
    settings: Settings
    wall_time_s: WallTime
    artifacts: Artifacts
    complete: bool = Field(
        description="False when the time budget or a cancel stopped the run early, or when the scratch students' "
        "share of the time held both sides short of the planned epochs (settings.stop_reason budget_share)"
    )
    summary: str
    plan: Plan | None = Field(None, description="The budget plan and what it cut")
