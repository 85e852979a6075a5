"""The quick-distill report: one pydantic model, saved as JSON and returned as MCP structured output."""

from __future__ import annotations

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
    reliability: list[list[float]] = Field(default_factory=list, description="Per non-empty confidence bin: [mean confidence, accuracy, count]")


class Trial(BaseModel):
    temperature: float
    kd_loss_weight: float
    val_accuracy: float
    epochs: int


class CascadePoint(BaseModel):
    threshold: float
    accuracy: float
    share_to_teacher: float
    is_guidance_threshold: bool = Field(description="The threshold in use: the rule's 0.9 unless cascade_threshold was set")


class SeedSummary(BaseModel):
    seeds: list[int]
    gains_points: list[float]
    mean_gain_points: float
    std_gain_points: float
    distilled_accuracy_mean: float
    scratch_accuracy_mean: float
    gain_beats_noise: bool
    statement: str


class Settings(BaseModel):
    seed: int
    method: str
    method_reason: str
    topology: str
    arch: str
    teacher_hidden: list[int] | None
    student_hidden: list[int]
    temperature: float
    kd_loss_weight: float
    temperature_tuned: bool
    epochs: int
    epochs_run_distilled: int
    epochs_run_scratch: int
    augment: str
    transfer_set_size: int
    stop_reason: str
    threads: int


class WallTime(BaseModel):
    data: float = 0.0
    teacher: float = 0.0
    scratch: float = 0.0
    distill: float = 0.0
    evaluate: float = 0.0
    total: float = 0.0


class Artifacts(BaseModel):
    output_dir: str | None = None
    student_weights: str | None = None
    report: str | None = None
    plot: str | None = None


class DistillReport(BaseModel):
    dataset: str
    num_classes: int
    n_train: int
    n_val: int
    n_test: int
    teacher: ModelMetrics
    scratch: ModelMetrics | None
    distilled: ModelMetrics | None
    gain_points: float | None = Field(description="Distilled minus scratch accuracy, in points (seed 0 run; see seed_summary)")
    teacher_share_kept: float | None = Field(description="Distilled accuracy / teacher accuracy")
    compression_ratio: float | None
    alpha: float
    distillation_score: float | None
    trials: list[Trial]
    cascade: list[CascadePoint] | None = None
    seed_summary: SeedSummary | None = None
    diagnosis: DiagnoseFailureResponse | None = None
    quality_gates: QualityGatesResponse | None = None
    settings: Settings
    wall_time_s: WallTime
    artifacts: Artifacts
    complete: bool = Field(description="False when the time budget or a cancel stopped the run early")
    summary: str
