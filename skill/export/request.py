"""The export request and response: one pydantic model each, shared by the library, `kd-skill export` and MCP.

Every plan field is optional: a value given here wins, else the quick-distill report (`from_report`) supplies
it with its evidence, else the rule files' default with the rule's reason.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from skill.export import ENGINES
from skill.models import MethodId, Value

IMPORT_PATH = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*"
RUNNER_NETS = ("mlp", "cnn")

if TYPE_CHECKING:  # a Literal built at run time is no static type: the checker sees a name
    EngineName = str
else:
    EngineName = Literal[tuple(ENGINES)]  # the registry's names, so the schema lists them


def is_import_path(value: str) -> bool:
    return re.fullmatch(IMPORT_PATH, value) is not None


class ExportRequest(BaseModel):
    """Export a distillation plan (or a quick-distill report's tuned settings) as a self-contained training folder."""

    model_config = ConfigDict(extra="forbid")

    engine: EngineName = Field("torchrun", description=f"Training engine the recipe targets: {', '.join(ENGINES)}")
    engine_options: dict[str, Any] | None = Field(
        None,
        description=(
            "Engine-specific settings, validated by the engine (torchrun: groups, student_sizes, alpha, alpha_reason "
            "for the release evidence; trl: beta, lmbda, sampling_temperature, max_new_tokens, max_length, max_steps, "
            "gradient_checkpointing, accelerate, num_processes, use_vllm, vllm_mode, teacher_decoding, "
            "samples_per_prompt, teacher_sampling_temperature, teacher_top_p, verify, heldout_rows, "
            "teacher_server_url, teacher_top_k, serving_temperature)"
        ),
    )
    output_dir: str | None = Field(
        None,
        min_length=1,
        max_length=1000,
        description="Folder to write (new, empty, or an earlier export of this tool; default kd_exports/<engine>)",
    )
    from_report: str | None = Field(
        None,
        min_length=1,
        max_length=1000,
        description=(
            "A quick-distill report.json whose tuned settings and evidence are carried over; fields given here "
            "override it"
        ),
    )
    # ---- models -----------------------------------------------------------------------------
    teacher: str | None = Field(
        None,
        min_length=1,
        max_length=300,
        description=(
            "The teacher, in the engine's terms; torchrun: 'mlp' or 'cnn' (the quick-distill runner's nets, sized by "
            "teacher_hidden) or an import path 'package.module:factory' returning a torch.nn.Module; default: the "
            "report's arch, else 'mlp'"
        ),
    )
    teacher_hidden: list[int] | None = Field(
        None,
        min_length=1,
        max_length=6,
        description="Hidden sizes of a runner-net teacher (CNN: channels); default from the report, else [256, 256]",
    )
    teacher_weights: str | None = Field(
        None,
        max_length=1000,
        description=(
            "A .safetensors state dict loaded into the teacher; without it a runner-net teacher is trained first by "
            "train.py and a factory must return a trained model"
        ),
    )
    student: str | None = Field(
        None,
        min_length=1,
        max_length=300,
        description=(
            "The student, in the engine's terms; torchrun: 'mlp' or 'cnn' (sized by student_hidden) or an import path "
            "'package.module:factory' returning a torch.nn.Module; default: the report's arch, else 'mlp'"
        ),
    )
    student_hidden: list[int] | None = Field(
        None,
        min_length=1,
        max_length=6,
        description="Hidden sizes of a runner-net student; default from the report, else [32]",
    )
    # ---- data -------------------------------------------------------------------------------
    data: str | None = Field(
        None,
        min_length=1,
        max_length=1000,
        description=(
            "'digits', a .npz (X_train, y_train, X_test, y_test) or .csv file, or an import path "
            "'package.module:factory' called as factory(split) with split 'train' or 'test', returning a torch "
            "Dataset of (input, label); default: the report's dataset when it is 'digits'"
        ),
    )
    label_column: str | None = Field(
        None, max_length=200, description="Label column of a .csv (default: the last column)"
    )
    # ---- the plan ---------------------------------------------------------------------------
    method: MethodId | None = Field(
        None,
        description=(
            "Distillation method (cascade trains a response-based student and records the routing threshold); engine "
            "trl: token_kd, on_policy_kd, sequence_kd, reasoning_trace_kd, draft_model_kd or prune_then_distil"
        ),
    )
    response_loss: Literal["kd", "dkd"] | None = Field(
        None, description="Soft loss for response/cascade: Hinton KD or decoupled KD"
    )
    relation_loss: Literal["sp", "rkd"] | None = Field(
        None, description="Relation method's loss: similarity-preserving or RKD distance+angle"
    )
    topology: Literal["teacher_student"] | None = Field(
        None, description="Only teacher_student exports today (ensemble, online and self stay in the quick distill)"
    )
    temperature: float | None = Field(
        None, ge=0.5, le=50, description="Distillation temperature T (the soft loss is multiplied by T^2)"
    )
    kd_loss_weight: float | None = Field(
        None, ge=0, le=1, description="Weight of the soft term; hard cross-entropy gets 1 - weight"
    )
    epochs: int | None = Field(None, ge=1, le=10000, description="Student epochs (default: the report's, else 120)")
    teacher_epochs: int | None = Field(
        None, ge=1, le=10000, description="Epochs when train.py trains a runner-net teacher first"
    )
    global_batch_size: int | None = Field(
        None,
        ge=1,
        le=1_000_000,
        description=(
            "Samples per optimizer step over all processes and accumulation steps (default: the report's batch, else "
            "64)"
        ),
    )
    accumulation_steps: int = Field(
        1, ge=1, le=1024, description="Micro-batches per optimizer step on each process; the loss is divided by it"
    )
    learning_rate: float | None = Field(
        None, ge=1e-7, le=1.0, description="Adam learning rate (default 3e-3, the quick distill's)"
    )
    seed: int | None = Field(None, ge=0, le=2**31 - 1)
    cascade_threshold: float | None = Field(
        None, ge=0, le=1, description="Cascade: confidence above which the student answers (default: the rule's)"
    )
    teacher_cache: bool = Field(
        False,
        description=(
            "Compute the teacher's logits once in a first pass and cache them to disk (response/cascade, "
            "deterministic inputs only)"
        ),
    )
    baseline: bool = Field(
        False, description="Also train a from-scratch student with the same budget and report it in metrics.json"
    )
    check_imports: bool = Field(
        True,
        description=(
            "Check at export time, without running them, that import paths name an existing module and attribute on "
            "this Python path"
        ),
    )

    @field_validator("output_dir", "from_report", "data", "teacher_weights", "teacher", "student", "label_column")
    @classmethod
    def _one_line(cls, value: str | None, info: Any) -> str | None:
        """Names and paths are one line: a line break would start a new line in a launch command or the README."""
        if value is not None:
            from skill.paths import refuse_control_characters

            try:
                refuse_control_characters(value, info.field_name)
            except Exception as exc:  # InputError: pydantic reports it as this field's error
                raise ValueError(str(exc).split(": ", 1)[-1]) from None
        return value

    @field_validator("teacher_hidden", "student_hidden")
    @classmethod
    def _widths(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and any(not 1 <= h <= 65536 for h in value):
            raise ValueError(f"hidden sizes must lie in 1..65536; got {value}")
        return value


class ExportSetting(BaseModel):
    """One setting of the recipe: its value, why, and the quick-distill evidence behind it."""

    name: str
    value: Value = None
    why: str
    evidence: str | None = None


class ExportResponse(BaseModel):
    engine: str
    output_dir: str
    files: list[str] = Field(description="Files written, relative to output_dir")
    settings: list[ExportSetting] = Field(description="Every setting in config.yaml with its reason and evidence")
    commands: dict[str, str] = Field(description="How to launch: one CPU, one GPU, N GPUs, several nodes")
    warnings: list[str] = Field(default_factory=list)
    next_steps: list[str] = Field(default_factory=list)

    def text(self) -> str:
        """A readable summary for `--format text`."""
        lines = [f"Wrote a {self.engine} recipe to {self.output_dir}: {', '.join(self.files)}"]
        lines += [f"  {s.name} = {s.value!r}  ({s.evidence or s.why})" for s in self.settings]
        lines += [f"run ({where}): {cmd}" for where, cmd in self.commands.items()]
        lines += [f"note: {w}" for w in self.warnings] + [f"next: {n}" for n in self.next_steps]
        return "\n".join(lines)
