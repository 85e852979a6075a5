"""The tools the skill offers an agent: each one's name, title, description, effects and request/response models.

The descriptions are the contract an agent reads, so they live with the models they describe. The MCP adapter
stores them as its manifest (`python -m mcp_server.manifest --write`) and validates each call with `request_model`.
Importing this module imports the pydantic models; the server does not import it at start.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from skill import models
from skill.distill.config import DistillConfig
from skill.distill.report import DistillReport
from skill.export.request import ExportRequest, ExportResponse
from skill.release import ReleaseCheckResponse
from skill.rules import get_rules


@dataclass(frozen=True)
class Effects:
    """What a call does to the world, for a client deciding whether to ask before it (MCP's tool annotations)."""

    read_only: bool
    destructive: bool
    idempotent: bool
    open_world: bool


_RAW = get_rules().failure_modes["raw_limits"]
ADVISORY = Effects(read_only=True, destructive=False, idempotent=True, open_world=False)
# writes only inside the output root, never deletes, the same request rewrites the same folder
EXPORTER = Effects(read_only=False, destructive=False, idempotent=True, open_world=False)
RUNNER = Effects(read_only=False, destructive=False, idempotent=False, open_world=False)
DESCRIPTION = (
    "Run a real, small teacher -> student distillation with PyTorch on the CPU and return the report: accuracy, "
    "per-class accuracy, ECE, size, latency of teacher, from-scratch student and distilled student (paired seeds), the "
    "gain and whether it beats the noise (seeds > 1), the distillation score at alpha, the diagnosis and the quality "
    "gates; plus a PNG. Data: 'digits' or an .npz/.csv under the data root; teacher: 'train', precomputed logits "
    "(.npz), safetensors weights of the runner's own net, or TorchScript (only when the server allows it). Each run is "
    "a separate worker process with a memory limit, killed on cancel or past its budget. method 'auto' asks "
    "kd_recommend_method. Long-running: sends progress per epoch, honours cancellation and time_budget_s. Use to get "
    "evidence before spending real compute. Not for diagnosing your own model's numbers: use kd_diagnose_failure."
)


@dataclass(frozen=True)
class ToolSpec:
    name: str
    command: str  # key in skill.commands.COMMANDS, or "distill"
    response: type[BaseModel]
    title: str
    description: str
    effects: Effects = ADVISORY


SPECS = [
    ToolSpec(
        "kd_route_request",
        "route",
        models.RouteResponse,
        "Route a request",
        "Decide whether a request is knowledge distillation (in_scope), belongs to a sibling skill (delegate: which "
        "one, whether it is installed, and a fallback if not), or hits a not-for boundary (out_of_scope), from what "
        "the request asks to be done. Fill the structured inputs first, from the conversation (primary_goal, "
        "is_ml_model, has_size_or_latency_budget, is_prototype, model_params, latency_budget_ms): they decide before "
        "the text and are never overridden. Always pass the user's words as request: the router reads them (rules, "
        "then a learned reader) as the fallback, where the structured inputs leave the decision open. On delegate or "
        "out_of_scope, tell the user the reason and the fallback and ask before dropping the task; on confidence low "
        "or medium, ask `question`. Use it first on a new request. Not for choosing a method: use kd_recommend_method.",
    ),
    ToolSpec(
        "kd_recommend_method",
        "recommend",
        models.RecommendMethodResponse,
        "Recommend a distillation method and topology",
        "Return the distillation method (response / feature / relation / cascade; for task_type generation: token_kd / "
        "on_policy_kd / sequence_kd at T = 1, from teacher_access and same_tokenizer) with hyperparameters such as the "
        "temperature range, and the topology (hierarchical / ensemble / online / self), with the rule trace, risk "
        "warnings and the inputs whose absence limited the answer; a choice made with an input missing is marked "
        "assumed, with the questions to ask the user. Use when planning a distillation. Not for alpha: use "
        "kd_choose_alpha.",
    ),
    ToolSpec(
        "kd_choose_alpha",
        "alpha",
        models.ChooseAlphaResponse,
        "Choose alpha for the distillation score",
        "Return alpha, the size-versus-accuracy priority (a range and a point value, plus checkpoints when routing by "
        "difficulty is possible), for a deployment environment and application domain, with conflicts flagged. Alpha "
        "weights the distillation score. Use before kd_score_distillation. Not for the KD loss weight (kd_loss_weight "
        "of kd_run_quick_distill).",
    ),
    ToolSpec(
        "kd_score_distillation",
        "score",
        models.ScoreDistillationResponse,
        "Score or rank students",
        "Return the distillation score DS = alpha*(student size/teacher size) + (1-alpha)*(1 - student acc/teacher "
        "acc) with both terms, or a ranking of up to 100 candidates, best (lowest) first. Accuracies are fractions in "
        "[0, 1]. Pass the accuracy floor as min_student_accuracy: students below it are marked and ranked after every "
        "one that meets it (DS alone rewards size without limit). DS values compare only at the same alpha. from_run "
        "(a finished run folder) supplies alpha, sizes and accuracies. Use to compare students at a chosen alpha. Not "
        "for a quality check: use kd_diagnose_failure.",
    ),
    ToolSpec(
        "kd_diagnose_failure",
        "diagnose",
        models.DiagnoseFailureResponse,
        "Diagnose a distilled model",
        "Check the five failure modes (accuracy_mirage, temperature_blindness, capacity_cliff, hierarchical_rigidity, "
        "bias_amplification); each is detected, clear or not_evaluated with evidence against its threshold and the "
        f"fix. Give summary numbers or raw labels + probabilities (at most {_RAW['max_samples']} samples and "
        f"{_RAW['max_values']} values; it computes accuracy, per-class accuracy and ECE), or from_run: a finished run "
        "folder of an exported recipe. Use after training a student or when it underperforms. Not for choosing a "
        "method: use kd_recommend_method.",
    ),
    ToolSpec(
        "kd_check_quality_gates",
        "gates",
        models.QualityGatesResponse,
        "Check the release quality gates",
        "Return pass / fail / unknown for each of the ten quality gates (score with alpha, stratified validation, "
        "temperature and calibration, capacity cliff, bias monitoring, robustness suite, cascade above 5x, multi-agent "
        "coordination, budgets, rollback), with what is missing; from_run fills what a finished run folder shows. Use "
        "before shipping a student or to review a plan. Not for diagnosing accuracy: use kd_diagnose_failure.",
    ),
    ToolSpec(
        "kd_release_check",
        "release-check",
        ReleaseCheckResponse,
        "Decide whether a trained student ships",
        "From a finished run folder of an exported recipe (torchrun: evidence.json + predictions.npz; TRL: "
        "generation_evidence.json), under the data root: the diagnosis of the five failure modes on the run's own "
        "predictions, the ten gates with the source of each input, the distillation score at the plan's alpha, the "
        "distilled student against the from-scratch one, and one decision (ship / ship_with_conditions / do_not_ship) "
        "with a paragraph of the run's numbers. Pass the deployment facts a run cannot show (budgets, monitoring, "
        "rollback) to settle the conditions. Use after the full-scale run. Not for a plan: use kd_check_quality_gates.",
    ),
    ToolSpec("kd_run_quick_distill", "distill", DistillReport, "Run a quick distillation", DESCRIPTION, RUNNER),
    ToolSpec(
        "kd_export_recipe",
        "export",
        ExportResponse,
        "Export a full-scale training recipe",
        "Write a self-contained training folder for the real run on one or many machines: train.py (PyTorch DDP "
        "launched by torchrun: sharded data, gloo on CPU / nccl on GPU, AMP, gradient accumulation, checkpoint and "
        "resume, frozen or cached teacher), config.yaml (every setting with its reason and the quick-distill evidence "
        "behind it) and README.md (commands for 1 CPU, 1 GPU, N GPUs, several nodes). Give the plan, or from_report (a "
        "quick distill's report.json) to carry its tuned settings over; teacher and student as 'mlp'/'cnn' or "
        "'package.module:factory'; data as 'digits', .npz/.csv under the data root or a Dataset factory. Writes only "
        "under the output root and runs none of your code. Use after kd_run_quick_distill showed a gain. engine 'trl' "
        "writes a language-model recipe instead (TRL GKDTrainer / SFTTrainer on Accelerate: method token_kd, "
        "on_policy_kd or sequence_kd from kd_recommend_method with task_type generation; teacher and student as "
        "Hugging Face model folders or hub ids; data a .jsonl of prompt/completion rows). Not for a quick experiment: "
        "use kd_run_quick_distill.",
        EXPORTER,
    ),
]
REQUESTS: dict[str, type[BaseModel]] = {"distill": DistillConfig, "export": ExportRequest}


def request_model(spec: ToolSpec) -> type[BaseModel]:
    """The library model that validates this tool's arguments."""
    from skill.commands import COMMANDS

    return REQUESTS[spec.command] if spec.command in REQUESTS else COMMANDS[spec.command].request


BY_NAME = {spec.name: spec for spec in SPECS}
