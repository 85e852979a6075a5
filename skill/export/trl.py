"""The trl engine: a recipe folder that distils a language model with Hugging Face TRL on Accelerate.

It writes train.py (templates/trl_train.py, copied as is), config.yaml (every setting with why and evidence),
accelerate.yaml (the chosen multi-GPU / FSDP / DeepSpeed launch), accelerate_cpu.yaml (a one-process CPU smoke
run) and README.md. The plan's settings come from `rules/llm_method.yaml`, so an export and
kd_recommend_method(task_type generation) agree: token_kd is GKDTrainer at lmbda 0 and beta 0 (TRL's forward
KL), on_policy_kd GKDTrainer with student samples, sequence_kd SFTTrainer on teacher completions.
Nothing here imports trl or torch or reads the models: train.py checks the tokenizers when it starts.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import re
import shutil
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator, Literal

from pydantic import BaseModel, ConfigDict, Field

from skill.errors import InputError
from skill.export.opened import is_file, local_path, open_binary
from skill.export.plan import Plan
from skill.export.request import ExportRequest

TEMPLATE = Path(__file__).with_name("templates") / "trl_train.py"
LLM_METHODS = ("token_kd", "on_policy_kd", "sequence_kd")
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?", re.ASCII)  # hub ids are ASCII
MAX_CHECKED_ROWS = 100_000  # rows of the JSONL validated at export; train.py reads them all
MAX_LINE_BYTES = 16 * 2**20  # one example; a file without newlines must not be read into memory whole
# request fields that belong to the torchrun engine: refused here rather than silently ignored
TORCHRUN_ONLY = ("from_report", "teacher_hidden", "student_hidden", "teacher_weights", "label_column", "response_loss",
                 "relation_loss", "kd_loss_weight", "cascade_threshold", "teacher_epochs")


class Options(BaseModel):
    """engine_options for trl; unset values come from llm_method.yaml for the chosen method."""

    model_config = ConfigDict(extra="forbid")

    beta: float | None = Field(None, ge=0, le=1, description="GKD generalised JSD: 0 forward KL, 0.5 JSD, 1 reverse KL (TRL's convention)")
    lmbda: float | None = Field(None, ge=0, le=1, description="GKD: fraction of batches sampled from the student (on-policy)")
    sampling_temperature: float | None = Field(None, gt=0, le=10, description="Temperature of the student's samples (TRL's GKDConfig.temperature); the loss stays at T = 1")
    max_new_tokens: int | None = Field(None, ge=1, le=32768, description="Tokens generated per on-policy sample or teacher completion")
    max_length: int = Field(1024, ge=16, le=1_048_576, description="Tokens kept per training sequence (prompt + completion)")
    max_steps: int | None = Field(None, ge=1, le=10**9, description="Stop after this many optimizer steps (default: train.epochs over the data)")
    gradient_checkpointing: bool = Field(True, description="Recompute activations in the backward pass: less memory, about a third more compute (TRL's default)")
    accelerate: Literal["multi_gpu", "fsdp", "deepspeed_zero3"] = Field("multi_gpu", description="Launch of accelerate.yaml: data parallel, FSDP2, or DeepSpeed ZeRO-3")
    num_processes: int = Field(1, ge=1, le=65536, description="Processes (GPUs) per machine in accelerate.yaml")


def _llm_rules() -> Any:
    from skill.rules import get_rules

    return get_rules().llm_method


MODEL_ROOT: contextvars.ContextVar[Path | None] = contextvars.ContextVar("kd_trl_model_root", default=None)


@contextlib.contextmanager
def models_confined_to(root: Path) -> Iterator[None]:
    """While exporting for the MCP server: a teacher or student folder must lie inside `root` (the data root)."""
    token = MODEL_ROOT.set(root)
    try:
        yield
    finally:
        MODEL_ROOT.reset(token)


def _model_spec(value: str | None, field: str) -> str | None:
    """A local model folder, or a hub id; a path that does not exist is refused here rather than at launch.
    Under the MCP server (MODEL_ROOT set) a folder must lie inside the data root, and the answer for anything outside
    is the same whether it exists or not."""
    if value is None:
        return None
    root = MODEL_ROOT.get()
    if root is not None:
        from skill.paths import confine_dir

        if value.startswith(("/", ".", "~")) or "\\" in value or (root / value).is_dir():
            return str(confine_dir(value, root, field))
        if not HUB_ID.fullmatch(value):
            raise InputError(field, f"{value!r} is neither a model folder under the data root nor a hub id like 'org/name'")
        return value
    if value.startswith(("/", ".", "~")) or Path(value).expanduser().is_dir():
        folder = Path(value).expanduser().resolve()
        if not folder.is_dir():
            raise InputError(field, f"{value!r} is not a folder; give a Hugging Face model folder (config.json, model.safetensors) or a hub id")
        return str(folder)
    if not HUB_ID.fullmatch(value):
        raise InputError(field, f"{value!r} is neither a model folder nor a hub id like 'org/name'")
    return value


def _check_rows(source: str | None) -> tuple[str, int, int]:
    """The JSONL's path, rows checked, and how many carry a completion; each bad line is named."""
    if source is None:
        raise InputError("data", "is required: a .jsonl file of {\"prompt\": ..., \"completion\": ...} or {\"messages\": [...]} rows")
    path = local_path(source)
    if path.suffix != ".jsonl" or not is_file(path):
        raise InputError("data", f"{source!r} is not an existing .jsonl file (one JSON object per line: prompt and completion, or messages)")
    rows = completed = number = 0
    with open_binary(path) as handle:
        while rows < MAX_CHECKED_ROWS:
            line = handle.readline(MAX_LINE_BYTES + 1)
            number += 1
            if not line:
                break
            if len(line) > MAX_LINE_BYTES:
                raise InputError("data", f"{path.name} line {number} is longer than {MAX_LINE_BYTES // 2**20} MiB; one JSON object per line")
            if not line.strip():
                continue
            try:
                row = json.loads(line.decode("utf-8"))
            except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError; deep nesting a RecursionError
                raise InputError("data", f"{path.name} line {number} is not a UTF-8 JSON object: {str(exc)[:200]}") from exc
            completed += _row_has_completion(row, path.name, number)
            rows += 1
    if rows == 0:
        raise InputError("data", f"{path.name} has no rows")
    return str(path), rows, completed


def _row_has_completion(row: Any, name: str, number: int) -> bool:
    if isinstance(row, dict) and isinstance(row.get("messages"), list) and row["messages"]:
        turns = row["messages"]
        if not all(isinstance(t, dict) and isinstance(t.get("content"), str) for t in turns):
            raise InputError("data", f"{name} line {number}: every message needs a string 'content'")
        return turns[-1].get("role") == "assistant" and len(turns) > 1
    if not isinstance(row, dict) or not isinstance(row.get("prompt"), str):
        raise InputError("data", f"{name} line {number}: needs a string 'prompt' (with an optional 'completion') or a 'messages' list")
    if row.get("completion") is not None and not isinstance(row["completion"], str):
        raise InputError("data", f"{name} line {number}: 'completion' must be a string")
    return bool(row.get("completion"))


def _refuse_foreign_fields(request: ExportRequest) -> None:
    for name in TORCHRUN_ONLY:
        if getattr(request, name) is not None:
            raise InputError(name, "is not used by the trl engine (it belongs to engine torchrun); remove it")
    for name in ("teacher_cache", "baseline"):
        if getattr(request, name):
            raise InputError(name, "is not used by the trl engine (it belongs to engine torchrun); set it false")
    if request.topology not in (None, "teacher_student"):
        raise InputError("topology", "trl recipes are teacher_student")


def resolve(request: ExportRequest) -> Plan:
    """Every setting of the recipe, checked; raises InputError naming the field on anything train.py would refuse."""
    _refuse_foreign_fields(request)
    llm = _llm_rules()
    options = Options.model_validate(request.engine_options or {})
    plan = Plan(request=request, report=None)
    method = request.method or "sequence_kd"
    if method not in LLM_METHODS:
        raise InputError("method", f"{method!r} is a classification method; engine trl takes {', '.join(LLM_METHODS)} (kd_recommend_method with task_type generation)")
    hp = llm["methods"][method]["hyperparameters"]
    loss_t = hp["default_temperature"]
    if request.temperature is not None and request.temperature != loss_t:
        raise InputError("temperature", f"{request.temperature} given, but TRL's distillation loss runs at T = {loss_t}; the sampling "
                         "temperature of student generations is engine_options.sampling_temperature")

    teacher, student = _model_spec(request.teacher, "teacher"), _model_spec(request.student, "student")
    if student is None:
        raise InputError("student", "is required: the student's Hugging Face model folder or hub id")
    source, rows, completed = _check_rows(request.data)
    if method != "sequence_kd" and teacher is None:
        raise InputError("teacher", f"{method} needs the teacher's logits: give its model folder or hub id (an API-only teacher: use sequence_kd)")

    plan.add("models.teacher", "The teacher (frozen); token-level methods need it to share the student's tokenizer, which train.py checks",
             given=teacher, default=None, default_evidence="none: the completions in the data are the teacher's (an API teacher)")
    plan.add("models.student", "The student trained here; weights load from safetensors only, never remote code", given=student)
    plan.add("data.source", "JSONL rows: prompt + completion, or messages", given=source)
    plan.add("data.rows_checked", "Rows validated at export", default=rows, default_evidence=f"read at export (the first {MAX_CHECKED_ROWS:,} at most)")
    plan.add("data.rows_with_completion", "Rows carrying a completion (sequence_kd: the teacher's; token_kd: the text the teacher scores)",
             default=completed, default_evidence="read at export")
    plan.add("data.max_length", "Tokens kept per sequence", **_option(options, "max_length"))
    _method_settings(plan, method, hp, options, rows, completed, teacher)

    plan.add("train.epochs", "Passes over the data", given=request.epochs, default=1, default_evidence="one pass: distillation data for LLMs is usually large")
    plan.add("train.max_steps", "Optimizer steps to stop at (null: the epochs decide)", given=options.max_steps)
    batch = plan.add("train.global_batch_size", "Sequences per optimizer step over all processes and accumulation steps", given=request.global_batch_size,
                     default=8, default_evidence="small enough for one GPU with a billion-parameter student; raise it with memory")
    accumulation = plan.add("train.accumulation_steps", "Micro-batches per optimizer step on each process", default=request.accumulation_steps,
                            default_evidence="set in the export request" if request.accumulation_steps > 1 else "1: raise it when a micro-batch does not fit")
    if batch % (accumulation * options.num_processes):
        raise InputError("global_batch_size", f"{batch} is not a multiple of accumulation_steps x num_processes ({accumulation} x {options.num_processes})")
    plan.add("train.learning_rate", "AdamW learning rate", given=request.learning_rate, default=2e-5, default_evidence="TRL's SFTConfig / GKDConfig default")
    plan.add("train.seed", "Initial weights, shuffling and sampling", given=request.seed, default=0)
    plan.add("train.bf16", "bfloat16 mixed precision: auto is on for GPUs that support it, off on CPUs", default="auto")
    plan.add("train.gradient_checkpointing", "Less activation memory for more compute", **_option(options, "gradient_checkpointing"))
    plan.add("launch.accelerate", "accelerate.yaml: how the run spreads over GPUs", **_option(options, "accelerate"))
    plan.add("launch.num_processes", "Processes (GPUs) per machine; edit accelerate.yaml to your GPU count", **_option(options, "num_processes"))
    plan.add("versions.trl", "TRL version the recipe was written for (GKDTrainer lives in trl.experimental and can change)",
             default=_installed("trl"), default_evidence="installed where the recipe was exported")
    return plan


def _method_settings(plan: Plan, method: str, hp: Any, options: Options, rows: int, completed: int, teacher: str | None) -> None:
    """The loss and its knobs, from llm_method.yaml unless engine_options overrides them."""
    trainer = "SFTTrainer" if method == "sequence_kd" else "GKDTrainer"
    evidence = f"llm_method.yaml {method}"
    plan.add("distill.method", "What the student learns from the teacher", given=method)
    plan.add("distill.trainer", "The TRL trainer that runs it", default=trainer, default_evidence=hp["trl_trainer"])
    plan.add("distill.loss_temperature", "Temperature of the distillation loss (fixed by TRL)", default=hp["default_temperature"],
             default_evidence=f"{evidence}: token-level KD for language models runs at T = 1")
    plan.add("distill.max_new_tokens", "Tokens per generated completion (student samples, or teacher completions for sequence_kd)",
             given=options.max_new_tokens, default=hp.get("max_new_tokens", 128), default_evidence=f"{evidence} (TRL's GKDConfig default 128)")
    if method == "sequence_kd":
        if options.beta is not None or options.lmbda is not None:
            raise InputError("engine_options", "beta and lmbda are GKD settings; sequence_kd fine-tunes on teacher text (use token_kd or on_policy_kd)")
        if completed < rows and teacher is None:
            raise InputError("data", f"{rows - completed} of {rows} rows have no completion and no teacher is given to write them; add the "
                             "teacher's completions (for an API teacher) or give teacher")
        if completed < rows:
            plan.warnings.append(f"{rows - completed} rows have no completion: train.py first generates them with the teacher (greedy, its own tokenizer)")
        return
    beta = plan.add("distill.beta", "Generalised JSD: 0 forward KL(teacher || student), 0.5 JSD, 1 reverse KL", given=options.beta,
                    default=hp.get("trl_beta", hp.get("beta")), default_evidence=evidence)
    lmbda = plan.add("distill.lmbda", "Fraction of batches whose completions the student samples itself", given=options.lmbda,
                     default=hp.get("trl_lmbda", hp.get("lmbda")), default_evidence=evidence)
    plan.add("distill.seq_kd", "GKD's teacher-generated sequences (off here: the data's completions or the student's samples)",
             default=bool(hp.get("trl_seq_kd", False)), default_evidence=evidence)
    plan.add("distill.sampling_temperature", "Temperature of the student's samples (TRL's GKDConfig.temperature), not the loss",
             given=options.sampling_temperature, default=hp.get("sampling_temperature", 1.0), default_evidence=evidence)
    margin = _llm_rules()["thresholds"]["beta_endpoint_margin"]
    if 0 < beta < margin or 1 - margin < beta < 1:
        plan.warnings.append(f"beta {beta} is within {margin} of an endpoint: TRL treats exactly 0 and 1 as forward and reverse KL, but near "
                             "them the generalised JSD shrinks towards zero (TRL PR 3043); use 0, 0.5 or 1")
    if method == "token_kd" and lmbda > 0:
        plan.warnings.append(f"lmbda {lmbda} samples from the student: that is on-policy KD, not token_kd")
    if lmbda < 1 and completed < rows:
        raise InputError("data", f"{rows - completed} of {rows} rows have no completion; {method} at lmbda {lmbda} trains on the data's "
                         "completions for the off-policy batches (give completions, or lmbda 1)")


def _option(options: Options, name: str) -> dict[str, Any]:
    """An engine option as Plan.add arguments: given when set in the request, else its default and the reason for it."""
    value = getattr(options, name)
    if name in options.model_fields_set:
        return {"given": value}
    return {"default": value, "default_evidence": f"engine default: {Options.model_fields[name].description}"}


def _installed(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed here"


# ---- writing the folder --------------------------------------------------------------------------

_ACCELERATE_BASE = {"compute_environment": "LOCAL_MACHINE", "debug": False, "machine_rank": 0, "main_training_function": "main",
                    "num_machines": 1, "rdzv_backend": "static", "same_network": True, "downcast_bf16": "no"}
_LAUNCHES: dict[str, dict[str, Any]] = {
    "multi_gpu": {"distributed_type": "MULTI_GPU", "gpu_ids": "all", "mixed_precision": "bf16"},
    "fsdp": {"distributed_type": "FSDP", "mixed_precision": "bf16", "fsdp_config": {
        "fsdp_version": 2, "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP", "fsdp_state_dict_type": "FULL_STATE_DICT",
        "fsdp_reshard_after_forward": True, "fsdp_cpu_ram_efficient_loading": True, "fsdp_offload_params": False, "fsdp_activation_checkpointing": False}},
    "deepspeed_zero3": {"distributed_type": "DEEPSPEED", "mixed_precision": "bf16", "deepspeed_config": {
        "zero_stage": 3, "zero3_init_flag": True, "zero3_save_16bit_model": True, "offload_optimizer_device": "none",
        "offload_param_device": "none", "deepspeed_multinode_launcher": "standard"}},
}


def _accelerate_yaml(launch: str, processes: int) -> str:
    import yaml

    config = {**_ACCELERATE_BASE, **_LAUNCHES[launch], "num_processes": processes, "use_cpu": False}
    if launch == "multi_gpu" and processes == 1:
        config = {**config, "distributed_type": "NO"}
    return "# Accelerate launch config (accelerate launch --config_file accelerate.yaml train.py); TRL ships the same layouts.\n" + yaml.safe_dump(config, sort_keys=True)


def _accelerate_cpu_yaml() -> str:
    import yaml

    config = {**_ACCELERATE_BASE, "distributed_type": "NO", "mixed_precision": "no", "num_processes": 1, "use_cpu": True}
    return "# One CPU process: the smoke test (accelerate launch --config_file accelerate_cpu.yaml train.py --max-steps 2).\n" + yaml.safe_dump(config, sort_keys=True)


NEXT_STEPS = [
    "Run the CPU smoke test first (2 steps): it proves the recipe, the tokenizers and the data on this machine.",
    "Then launch on GPUs with accelerate.yaml; watch the loss in metrics.json and compare the student with the teacher on held-out prompts.",
    "Check the student against its release budgets with kd_check_quality_gates before shipping.",
]


def commands(out_dir: Path) -> dict[str, str]:
    """Launch commands, every path shell-quoted: a folder named 'x; touch marker; #' stays one argument."""
    import shlex

    script, cpu, gpu = (shlex.quote(str(out_dir / name)) for name in ("train.py", "accelerate_cpu.yaml", "accelerate.yaml"))
    return {
        "CPU smoke test (2 steps)": f"accelerate launch --config_file {cpu} {script} --max-steps 2 --cpu",
        "GPUs, one machine": f"accelerate launch --config_file {gpu} {script}",
        # accelerate's num_processes counts every process of the job (it runs num_processes // num_machines per machine)
        "several machines": (f"accelerate launch --config_file {gpu} --num_machines NODES --num_processes TOTAL_GPUS --machine_rank RANK "
                             f"--main_process_ip HOST --main_process_port 29500 {script} --output-dir /shared/run  # on every machine"),
    }


def _readme(plan: Plan) -> str:
    cmds = commands(Path("."))
    rows = "\n".join(f"| `{k}` | {s.value!r} | {s.why} |" for k, s in plan.settings.items())
    method = plan.value("distill.method")
    if method == "token_kd":
        loss = "forward KL on every next-token distribution of the data's completions (GKDTrainer, lmbda 0, beta 0)"
    elif method == "on_policy_kd":
        loss = (f"generalised JSD (beta {plan.value('distill.beta')}) on the student's own samples for a fraction "
                f"lmbda {plan.value('distill.lmbda')} of batches (GKDTrainer)")
    else:
        loss = "cross-entropy on the teacher's completions (SFTTrainer)"
    notes = "".join(f"- {w}\n" for w in plan.warnings)
    return f"""# Language-model distillation recipe (TRL + Accelerate)

Written by `kd-skill export --engine trl`. `train.py` distils `{plan.value('models.teacher')}` into
`{plan.value('models.student')}` with `{method}`: {loss}, loss at T = {plan.value('distill.loss_temperature')}.
Every setting, why it has its value and where the value came from are in `config.yaml`.
Written for TRL {plan.value('versions.trl')}; GKDTrainer lives in `trl.experimental` and may move between releases.
{f"{chr(10)}Notes:{chr(10)}{notes}" if notes else ""}
Needs: Python 3.10+, `torch`, `transformers`, `trl`, `datasets`, `accelerate`, `pyyaml`
(`pip install "knowledge-distillation-deep[llm]"` brings the versions this was tested with).

## Run it

| where | command |
|---|---|
| CPU smoke test (2 steps) | `{cmds['CPU smoke test (2 steps)']}` |
| GPUs, one machine | `{cmds['GPUs, one machine']}` |
| several machines (run on each) | `{cmds['several machines'].split('  #')[0]}` |

- `accelerate.yaml` holds the launch (`{plan.value('launch.accelerate')}`, {plan.value('launch.num_processes')} processes); edit
  `num_processes` to your GPU count. On several machines accelerate counts every process of the job, so the command
  passes the total (`--num_processes TOTAL_GPUS`, machines x GPUs each). DeepSpeed needs `pip install deepspeed`.
- `train.global_batch_size` is the batch of one optimizer step over all processes: each process takes
  global / (processes x accumulation steps).
- Token-level methods stop at start when teacher and student tokenizers differ (a mismatch trains on the wrong targets).
- Models load from safetensors only and never run remote code. Outputs in `--output-dir` (default `run/`):
  `student/` (weights and tokenizer), `metrics.json` (loss per step, versions, wall time), and for sequence_kd
  `teacher_completions.jsonl` when the teacher wrote missing completions.
- Flags: `--config`, `--output-dir`, `--max-steps`, `--cpu`.

## Settings

| setting | value | why |
|---|---|---|
{rows}
"""


check = resolve  # export-time checks: resolve raises InputError on bad input and writes nothing


def write(request: ExportRequest, out_dir: Path) -> list[Path]:
    """Write train.py, config.yaml, accelerate.yaml, accelerate_cpu.yaml and README.md into out_dir; return them."""
    from skill.export.torchrun import _yaml  # the shared config.yaml layout: {section: {name: {value, why, evidence}}}

    plan = resolve(request)
    files = {
        "config.yaml": _yaml(plan).replace("--engine torchrun", "--engine trl", 1),
        "accelerate.yaml": _accelerate_yaml(plan.value("launch.accelerate"), plan.value("launch.num_processes")),
        "accelerate_cpu.yaml": _accelerate_cpu_yaml(),
        "README.md": _readme(plan),
    }
    shutil.copyfile(TEMPLATE, out_dir / "train.py")
    for name, text in files.items():
        (out_dir / name).write_text(text, encoding="utf-8")
    return [out_dir / "train.py", *(out_dir / name for name in files)]
