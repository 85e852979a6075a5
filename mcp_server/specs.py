"""Every tool's name, title, description, annotations and its request/response models.

Used to generate the stored manifest (`python -m mcp_server.manifest --write`) and, at call time, to
validate arguments with the library's own request model. Importing it imports the pydantic models, so the
server does not import it at start.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mcp.types import ToolAnnotations
from pydantic import BaseModel

from skill import models
from skill.distill.config import DistillConfig
from skill.distill.report import DistillReport
from skill.rules import get_rules

_RAW = get_rules().failure_modes["raw_limits"]
ADVISORY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
RUNNER = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False)
DESCRIPTION = (
    "Run a real, small teacher -> student distillation with PyTorch on the CPU and return the report: accuracy, per-class "
    "accuracy, ECE, size, latency of teacher, from-scratch student and distilled student (paired seeds), the gain and whether it "
    "beats the noise (seeds > 1), the distillation score at alpha, the diagnosis and the quality gates; plus a PNG. Data: 'digits' "
    "or an .npz/.csv under the data root; teacher: 'train', precomputed logits (.npz), safetensors weights of the runner's own net, or TorchScript (only when the server "
    "allows it). Each run is a separate worker process with a memory limit, killed on cancel or past its budget. method 'auto' asks "
    "kd_recommend_method. Long-running: sends progress per epoch, honours cancellation and time_budget_s. Use to get evidence "
    "before spending real compute. Not for diagnosing your own model's numbers: use kd_diagnose_failure."
)


@dataclass(frozen=True)
class ToolSpec:
    name: str
    command: str  # key in skill.commands.COMMANDS, or "distill"
    response: type[BaseModel]
    title: str
    description: str
    annotations: ToolAnnotations = field(default_factory=lambda: ADVISORY)


SPECS = [
    ToolSpec(
        "kd_route_request", "route", models.RouteResponse, "Route a request",
        "Decide whether a request is knowledge distillation (in_scope), belongs to a sibling skill (delegate: which one, "
        "whether it is installed, and a fallback if not), or hits a not-for boundary (out_of_scope). Use it first on a new "
        "request. Not for choosing a method: use kd_recommend_method.",
    ),
    ToolSpec(
        "kd_recommend_method", "recommend", models.RecommendMethodResponse, "Recommend a distillation method and topology",
        "Return the distillation method (response / feature / relation / cascade) with hyperparameters such as the temperature "
        "range, and the topology (hierarchical / ensemble / online / self), with the rule trace, risk warnings and the inputs "
        "whose absence limited the answer. Use when planning a distillation. Not for alpha: use kd_choose_alpha.",
    ),
    ToolSpec(
        "kd_choose_alpha", "alpha", models.ChooseAlphaResponse, "Choose alpha for the distillation score",
        "Return alpha, the size-versus-accuracy priority (a range and a point value, plus checkpoints when routing by difficulty "
        "is possible), for a deployment environment and application domain, with conflicts flagged. Alpha weights the distillation "
        "score. Use before kd_score_distillation. Not for the KD loss weight (kd_loss_weight of kd_run_quick_distill).",
    ),
    ToolSpec(
        "kd_score_distillation", "score", models.ScoreDistillationResponse, "Score or rank students",
        "Return the distillation score DS = alpha*(student size/teacher size) + (1-alpha)*(1 - student acc/teacher acc) with both "
        "terms, or a ranking of up to 100 candidates, best (lowest) first. Accuracies are fractions in [0, 1]. Use to compare "
        "students at a chosen alpha. Not for a quality check: use kd_diagnose_failure.",
    ),
    ToolSpec(
        "kd_diagnose_failure", "diagnose", models.DiagnoseFailureResponse, "Diagnose a distilled model",
        "Check the five failure modes (accuracy_mirage, temperature_blindness, capacity_cliff, hierarchical_rigidity, "
        "bias_amplification); each is detected, clear or not_evaluated with evidence against its threshold and the fix. Give "
        f"summary numbers or raw labels + probabilities (at most {_RAW['max_samples']} samples and {_RAW['max_values']} values; it computes "
        "accuracy, per-class accuracy and ECE). Use after "
        "training a student or when it underperforms. Not for choosing a method: use kd_recommend_method.",
    ),
    ToolSpec(
        "kd_check_quality_gates", "gates", models.QualityGatesResponse, "Check the release quality gates",
        "Return pass / fail / unknown for each of the ten quality gates (score with alpha, stratified validation, temperature and "
        "calibration, capacity cliff, bias monitoring, robustness suite, cascade above 5x, multi-agent coordination, budgets, "
        "rollback), with what is missing. Use before shipping a student or to review a plan. Not for diagnosing accuracy: use kd_diagnose_failure.",
    ),
    ToolSpec("kd_run_quick_distill", "distill", DistillReport, "Run a quick distillation", DESCRIPTION, RUNNER),
]
REQUESTS: dict[str, type[BaseModel]] = {"distill": DistillConfig}


def request_model(spec: ToolSpec) -> type[BaseModel]:
    """The library model that validates this tool's arguments."""
    from skill.commands import COMMANDS

    return REQUESTS[spec.command] if spec.command in REQUESTS else COMMANDS[spec.command].request


BY_NAME = {spec.name: spec for spec in SPECS}
