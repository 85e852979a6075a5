"""The trl engine: a recipe folder that distils a language model with Hugging Face TRL on Accelerate.

It writes train.py (templates/trl_train.py, copied as is) with its helpers trl_evidence.py (held-out generation
evidence) and trl_verify.py (the answer check for reasoning traces), config.yaml (every setting with why and
evidence), accelerate.yaml (the chosen multi-GPU / FSDP / DeepSpeed launch), accelerate_cpu.yaml (a one-process
CPU smoke run) and README.md (with the teacher's memory plan). The plan's settings come from
`rules/llm_method.yaml`, so an export and kd_recommend_method(task_type generation) agree: on_policy_kd and
draft_model_kd run TRL's stable DistillationTrainer (every batch sampled by the student); token_kd and
prune_then_distil need GKDTrainer at lmbda 0, beta 0 (DistillationTrainer cannot train off-policy), and config.yaml
says so; sequence_kd and reasoning_trace_kd run SFTTrainer on teacher completions.
Nothing here imports trl or torch: the installed TRL's config fields are read from its source (ast), and the
models' config.json / tokenizer.json are read as JSON for the vocab-size check; train.py checks again at start.
"""

from __future__ import annotations

import ast
import contextlib
import contextvars
import importlib.util
import json
import re
import shutil
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from skill.errors import InputError
from skill.export.opened import is_file, local_path, open_binary
from skill.export.plan import Plan
from skill.export.request import ExportRequest

TEMPLATE = Path(__file__).with_name("templates") / "trl_train.py"
HELPERS = ("trl_evidence.py", "trl_verify.py")  # copied beside train.py, which imports them
LLM_METHODS = ("token_kd", "on_policy_kd", "sequence_kd", "reasoning_trace_kd", "draft_model_kd", "prune_then_distil")
ON_POLICY = ("on_policy_kd", "draft_model_kd")
SEQUENCE = ("sequence_kd", "reasoning_trace_kd")
MAX_CONFIG_BYTES = 4 * 2**20  # a model's config.json; tokenizer.json is read up to MAX_TOKENIZER_BYTES
MAX_TOKENIZER_BYTES = 64 * 2**20
# the TRL config classes the recipe constructs, and where their source lives inside the installed package
TRL_CONFIGS = {
    "DistillationTrainer": ("trainer/distillation_config.py", "DistillationConfig"),
    "GKDTrainer": ("experimental/gkd/gkd_config.py", "GKDConfig"),
    "ServerDistillationTrainer": (
        "experimental/server_distillation/server_distillation_config.py",
        "ServerDistillationConfig",
    ),
}
TRL_FIELDS = {
    "DistillationTrainer": ("beta", "temperature", "max_completion_length", "use_vllm", "vllm_mode"),
    "GKDTrainer": ("lmbda", "beta", "seq_kd", "temperature", "max_new_tokens"),
    "ServerDistillationTrainer": ("teacher_model_server_url", "loss_top_k", "loss_add_tail"),
}
SERVER_URL = re.compile(r"https?://[A-Za-z0-9.\-\[\]:]+(:\d{1,5})?/?", re.ASCII)
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?", re.ASCII)  # hub ids are ASCII
MAX_CHECKED_ROWS = 100_000  # rows of the JSONL validated at export; train.py reads them all
MAX_LINE_BYTES = 16 * 2**20  # one example; a file without newlines must not be read into memory whole
# request fields that belong to the torchrun engine: refused here rather than silently ignored
TORCHRUN_ONLY = (
    "from_report",
    "teacher_hidden",
    "student_hidden",
    "teacher_weights",
    "label_column",
    "response_loss",
    "relation_loss",
    "kd_loss_weight",
    "cascade_threshold",
    "teacher_epochs",
)


class Options(BaseModel):
    """engine_options for trl; unset values come from llm_method.yaml for the chosen method."""

    model_config = ConfigDict(extra="forbid")

    beta: float | None = Field(
        None, ge=0, le=1, description="GKD generalised JSD: 0 forward KL, 0.5 JSD, 1 reverse KL (TRL's convention)"
    )
    lmbda: float | None = Field(
        None, ge=0, le=1, description="GKD: fraction of batches sampled from the student (on-policy)"
    )
    sampling_temperature: float | None = Field(
        None,
        gt=0,
        le=10,
        description="Temperature of the student's samples (TRL's GKDConfig.temperature); the loss stays at T = 1",
    )
    max_new_tokens: int | None = Field(
        None, ge=1, le=32768, description="Tokens generated per on-policy sample or teacher completion"
    )
    max_length: int | None = Field(
        None,
        ge=16,
        le=1_048_576,
        description="Tokens kept per training sequence (prompt + completion); default from the method's rules",
    )
    max_steps: int | None = Field(
        None, ge=1, le=10**9, description="Stop after this many optimizer steps (default: train.epochs over the data)"
    )
    gradient_checkpointing: bool = Field(
        True,
        description=(
            "Recompute activations in the backward pass: less memory, about a third more compute (TRL's default)"
        ),
    )
    accelerate: Literal["multi_gpu", "fsdp", "deepspeed_zero3"] = Field(
        "multi_gpu", description="Launch of accelerate.yaml: data parallel, FSDP2, or DeepSpeed ZeRO-3"
    )
    num_processes: int = Field(1, ge=1, le=65536, description="Processes (GPUs) per machine in accelerate.yaml")
    use_vllm: bool = Field(
        False, description="DistillationTrainer: generate the student's samples with vLLM (pip install vllm; GPUs only)"
    )
    vllm_mode: Literal["colocate", "server"] = Field(
        "colocate", description="vLLM beside the trainer on the same GPUs, or a separate `trl vllm-serve` process"
    )
    teacher_decoding: Literal["greedy", "sample"] | None = Field(
        None, description="sequence-level methods: the teacher's most likely answer, or sampled answers"
    )
    samples_per_prompt: int | None = Field(
        None, ge=1, le=64, description="sequence-level methods with sampling: teacher samples per prompt"
    )
    teacher_sampling_temperature: float | None = Field(
        None, gt=0, le=10, description="sequence-level methods with sampling: the teacher's sampling temperature"
    )
    teacher_top_p: float | None = Field(
        None, gt=0, le=1, description="sequence-level methods with sampling: nucleus sampling threshold"
    )
    verify: bool | None = Field(
        None,
        description="sequence-level methods with sampling: keep only traces trl_verify.py accepts (rejection sampling)",
    )
    heldout_rows: int | None = Field(
        None, ge=0, le=100_000, description="Rows kept out of training and scored at the end (generation_evidence.json)"
    )
    teacher_server_url: str | None = Field(
        None,
        max_length=300,
        description="On-policy: the teacher behind `trl vllm-serve` at this URL "
        "(TRL's experimental ServerDistillationTrainer, top-k log-probabilities); the trainer then holds only the "
        "student",
    )
    serving_temperature: float | None = Field(
        None,
        ge=0,
        le=10,
        description="draft_model_kd: the temperature the target serves at "
        "(0: greedy); the draft is distilled at it (greedy: at the rules' greedy_serving_temperature)",
    )
    teacher_top_k: int | None = Field(
        None,
        ge=1,
        le=4096,
        description="With teacher_server_url and beta 0: teacher log-probabilities per token (beta above 0 takes 1)",
    )


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
            raise InputError(
                field, f"{value!r} is neither a model folder under the data root nor a hub id like 'org/name'"
            )
        return value
    if value.startswith(("/", ".", "~")) or Path(value).expanduser().is_dir():
        folder = Path(value).expanduser().resolve()
        if not folder.is_dir():
            raise InputError(
                field,
                f"{value!r} is not a folder; give a Hugging Face model folder (config.json, model.safetensors) or a "
                "hub id",
            )
        return str(folder)
    if not HUB_ID.fullmatch(value):
        raise InputError(field, f"{value!r} is neither a model folder nor a hub id like 'org/name'")
    return value


def _check_rows(source: str | None) -> tuple[str, int, int]:
    """The JSONL's path, rows checked, and how many carry a completion; each bad line is named."""
    if source is None:
        raise InputError(
            "data", 'is required: a .jsonl file of {"prompt": ..., "completion": ...} or {"messages": [...]} rows'
        )
    path = local_path(source)
    if path.suffix != ".jsonl" or not is_file(path):
        raise InputError(
            "data",
            f"{source!r} is not an existing .jsonl file (one JSON object per line: prompt and completion, or messages)",
        )
    rows = completed = number = 0
    with open_binary(path) as handle:
        while rows < MAX_CHECKED_ROWS:
            line = handle.readline(MAX_LINE_BYTES + 1)
            number += 1
            if not line:
                break
            if len(line) > MAX_LINE_BYTES:
                raise InputError(
                    "data",
                    f"{path.name} line {number} is longer than {MAX_LINE_BYTES // 2**20} MiB; one JSON object per line",
                )
            if not line.strip():
                continue
            try:
                row = json.loads(line.decode("utf-8"))
            except (
                ValueError,
                RecursionError,
            ) as exc:  # UnicodeDecodeError is a ValueError; deep nesting a RecursionError
                raise InputError(
                    "data", f"{path.name} line {number} is not a UTF-8 JSON object: {str(exc)[:200]}"
                ) from exc
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
        raise InputError(
            "data",
            f"{name} line {number}: needs a string 'prompt' (with an optional 'completion') or a 'messages' list",
        )
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
        raise InputError(
            "method",
            f"{method!r} is a classification method; engine trl takes {', '.join(LLM_METHODS)} (kd_recommend_method "
            "with task_type generation)",
        )
    hp = llm["methods"][method]["hyperparameters"]

    teacher, student = _model_spec(request.teacher, "teacher"), _model_spec(request.student, "student")
    if student is None:
        raise InputError("student", "is required: the student's Hugging Face model folder or hub id")
    source, rows, completed = _check_rows(request.data)
    if method not in SEQUENCE and teacher is None:
        raise InputError(
            "teacher",
            f"{method} needs the teacher's logits: give its model folder or hub id (an API-only teacher: use "
            "sequence_kd)",
        )

    plan.add(
        "models.teacher",
        "The teacher (frozen); token-level methods need it to share the student's tokenizer, which train.py checks",
        given=teacher,
        default=None,
        default_evidence="none: the completions in the data are the teacher's (an API teacher)",
    )
    plan.add(
        "models.student",
        "The student trained here; weights load from safetensors only, never remote code",
        given=student,
    )
    plan.add(
        "data.source",
        "JSONL rows: prompt + completion, or messages (an optional 'answer' is what trl_verify.py checks)",
        given=source,
    )
    plan.add(
        "data.rows_checked",
        "Rows validated at export",
        default=rows,
        default_evidence=f"read at export (the first {MAX_CHECKED_ROWS:,} at most)",
    )
    plan.add(
        "data.rows_with_completion",
        "Rows carrying a completion (sequence-level: the teacher's; token_kd: the text the teacher scores)",
        default=completed,
        default_evidence="read at export",
    )
    plan.add(
        "data.max_length",
        "Tokens per sequence (prompt + completion): SFTTrainer and GKDTrainer truncate to it; for the on-policy "
        "trainers, which do not truncate, train.py drops prompts longer than max_length - max_new_tokens",
        given=options.max_length,
        default=hp["max_length"],
        default_evidence=f"llm_method.yaml {method}",
    )
    heldout = min(max(rows // 20, 1), 256) if rows >= 2 else 0
    plan.add(
        "data.heldout_rows",
        "Rows kept out of training and scored at the end with both models (generation_evidence.json)",
        given=options.heldout_rows,
        default=heldout,
        default_evidence="5% of the rows, at least 1 and at most 256 (the evidence stays bounded)",
    )
    if method not in SEQUENCE:
        _vocab_check(plan, teacher, student)
    _method_settings(plan, method, hp, options, rows, completed, teacher, request.temperature)

    plan.add(
        "train.epochs",
        "Passes over the data",
        given=request.epochs,
        default=1,
        default_evidence="one pass: distillation data for LLMs is usually large",
    )
    plan.add("train.max_steps", "Optimizer steps to stop at (null: the epochs decide)", given=options.max_steps)
    batch = plan.add(
        "train.global_batch_size",
        "Sequences per optimizer step over all processes and accumulation steps",
        given=request.global_batch_size,
        default=8,
        default_evidence="small enough for one GPU with a billion-parameter student; raise it with memory",
    )
    accumulation = plan.add(
        "train.accumulation_steps",
        "Micro-batches per optimizer step on each process",
        default=request.accumulation_steps,
        default_evidence="set in the export request"
        if request.accumulation_steps > 1
        else "1: raise it when a micro-batch does not fit",
    )
    if batch % (accumulation * options.num_processes):
        raise InputError(
            "global_batch_size",
            f"{batch} is not a multiple of accumulation_steps x num_processes ({accumulation} x "
            f"{options.num_processes})",
        )
    _require_one_batch(plan, method, rows, completed, batch)
    trainer_name = plan.value("distill.trainer")
    config_class = TRL_CONFIGS[trainer_name][1] if trainer_name in TRL_CONFIGS else "SFTConfig"
    plan.add(
        "train.learning_rate",
        "AdamW learning rate",
        given=request.learning_rate,
        default=llm["trainer_learning_rates"][trainer_name],
        default_evidence=f"TRL's {config_class} default for {trainer_name} (llm_method.yaml trainer_learning_rates)",
    )
    plan.add("train.seed", "Initial weights, shuffling and sampling", given=request.seed, default=0)
    plan.add("train.bf16", "bfloat16 mixed precision: auto is on for GPUs that support it, off on CPUs", default="auto")
    plan.add(
        "train.gradient_checkpointing",
        "Less activation memory for more compute",
        **_option(options, "gradient_checkpointing"),
    )
    plan.add("launch.accelerate", "accelerate.yaml: how the run spreads over GPUs", **_option(options, "accelerate"))
    plan.add(
        "launch.num_processes",
        "Processes (GPUs) per machine; edit accelerate.yaml to your GPU count",
        **_option(options, "num_processes"),
    )
    trainer = plan.value("distill.trainer")
    plan.add(
        "versions.trl",
        "TRL version the recipe was written for (DistillationTrainer is stable; GKDTrainer lives in trl.experimental "
        "and can change)",
        default=_installed("trl"),
        default_evidence="installed where the recipe was exported",
    )
    plan.add(
        "versions.trl_fields_checked",
        f"Arguments of the installed TRL's {TRL_CONFIGS[trainer][1] if trainer in TRL_CONFIGS else 'SFTConfig'} this "
        "recipe passes",
        default=_check_trl_signature(plan, trainer),
        default_evidence="read from the installed TRL's source at export (train.py checks again at start)",
    )
    return plan


def _check_trl_signature(plan: Plan, trainer: str) -> str:
    """The installed TRL's config class must take the arguments train.py passes; read its dataclass fields from
    source."""
    if trainer not in TRL_CONFIGS:
        return "not needed: SFTConfig takes only the common training arguments"
    spec = importlib.util.find_spec("trl")  # finds the package without importing it (and torch with it)
    if spec is None or not spec.submodule_search_locations:
        return "unchecked: trl is not installed where the recipe was exported"
    relative, name = TRL_CONFIGS[trainer]
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return f"unchecked: {relative} not readable in the installed trl"
    fields = {
        node.target.id
        for cls in ast.walk(tree)
        if isinstance(cls, ast.ClassDef) and cls.name == name
        for node in cls.body
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
    }
    if trainer == "ServerDistillationTrainer":  # it inherits beta, temperature, ... from DistillationConfig
        base = _fields_of(
            Path(next(iter(spec.submodule_search_locations))) / TRL_CONFIGS["DistillationTrainer"][0],
            "DistillationConfig",
        )
        fields |= base
        missing_base = [f for f in TRL_FIELDS["DistillationTrainer"] if f not in base]
        fields -= set(missing_base)
    missing = [f for f in TRL_FIELDS[trainer] if f not in fields]
    if missing:
        plan.warnings.append(
            f"the installed TRL's {name} has no {', '.join(missing)}: train.py will stop at start; install the TRL "
            "version the recipe names or export again with a TRL that has them"
        )
        return f"missing in the installed TRL: {', '.join(missing)}"
    return f"{name}: {', '.join(TRL_FIELDS[trainer])} present"


def _fields_of(path: Path, name: str) -> set[str]:
    """Annotated class attributes (dataclass fields) of class `name` in a source file; empty when unreadable."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return set()
    return {
        node.target.id
        for cls in ast.walk(tree)
        if isinstance(cls, ast.ClassDef) and cls.name == name
        for node in cls.body
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
    }


def _read_json(path: Path, limit: int) -> Any:
    """A small JSON file of a model folder, or None when absent, too large or not JSON (train.py checks again then)."""
    try:
        if not path.is_file() or path.stat().st_size > limit:
            return None
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None


def _vocab_rows(folder: Path) -> int | None:
    """config.json's vocab_size (the embedding rows), or its text_config's for multimodal configs."""
    config = _read_json(folder / "config.json", MAX_CONFIG_BYTES)
    if not isinstance(config, dict):
        return None
    value = config.get(
        "vocab_size",
        (config.get("text_config") or {}).get("vocab_size") if isinstance(config.get("text_config"), dict) else None,
    )
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _tokenizer_length(folder: Path) -> int | None:
    """len(tokenizer) from tokenizer.json: the model's vocabulary plus added tokens outside it (ids are 0..n-1)."""
    data = _read_json(folder / "tokenizer.json", MAX_TOKENIZER_BYTES)
    if not isinstance(data, dict) or not isinstance((data.get("model") or {}).get("vocab"), dict):
        return None
    found = set(data["model"]["vocab"].values()) | {
        t.get("id") for t in data.get("added_tokens") or [] if isinstance(t, dict)
    }
    ids = {i for i in found if isinstance(i, int)}
    return max(ids) + 1 if ids else None


def _vocab_check(plan: Plan, teacher: str | None, student: str) -> None:
    """Same tokenizer, different vocab_size (Qwen2.5 0.5B-3B vs 7B+): sliceable when the smaller covers the
    tokenizer."""
    folders = [Path(m) for m in (teacher, student) if m and Path(m).is_absolute()]
    if len(folders) < 2:
        plan.add(
            "distill.vocab_check",
            "Teacher and student vocab_size",
            default="at run start: a hub id is not read at export",
            default_evidence="train.py aligns or refuses before training",
        )
        return
    t_rows, s_rows = _vocab_rows(folders[0]), _vocab_rows(folders[1])
    if t_rows is None or s_rows is None or t_rows == s_rows:
        state = (
            f"same: {t_rows}"
            if t_rows is not None and t_rows == s_rows
            else "at run start: a config.json was not readable"
        )
        plan.add(
            "distill.vocab_check",
            "Teacher and student vocab_size",
            default=state,
            default_evidence="config.json of both models, read at export",
        )
        return
    tokens = _tokenizer_length(folders[1])
    shared = min(t_rows, s_rows)
    if tokens is not None and shared < tokens:
        field = "teacher" if t_rows < s_rows else "student"
        raise InputError(
            field,
            f"vocab_size {shared} is smaller than the tokenizer's {tokens} tokens (teacher {t_rows}, student "
            f"{s_rows}): the larger head cannot be sliced to it without losing real tokens; use models whose "
            "vocab_size covers the tokenizer, or sequence_kd",
        )
    cut = "teacher" if t_rows > s_rows else "student"
    covered = f"tokenizer {tokens} tokens" if tokens is not None else "tokenizer length checked at start"
    plan.add(
        "distill.vocab_check",
        "Teacher and student vocab_size",
        default=f"teacher {t_rows}, student {s_rows}: train.py cuts the {cut}'s head to {shared} rows",
        default_evidence=f"config.json of both models; {covered}; rows past the tokenizer are padding (TRL PR 6252)",
    )
    plan.warnings.append(
        f"vocab_size differs (teacher {t_rows}, student {s_rows}) over one tokenizer: train.py cuts the {cut}'s "
        f"embedding and head to the shared {shared} rows at start, since rows past the tokenizer are padding; TRL "
        "would otherwise stop at start"
    )


def _method_settings(
    plan: Plan,
    method: str,
    hp: Any,
    options: Options,
    rows: int,
    completed: int,
    teacher: str | None,
    temperature: float | None,
) -> None:
    """The trainer, the loss and its knobs, from llm_method.yaml unless engine_options overrides them."""
    evidence = f"llm_method.yaml {method}"
    plan.add("distill.method", "What the student learns from the teacher", given=method)
    trainer = hp["export_trainer"]
    why_trainer = hp["trl_trainer"]
    temperature = _serving_temperature(plan, method, hp, options, temperature)
    trainer, why_trainer = _gkd_if_needed(plan, method, hp, options, temperature, trainer, why_trainer)
    loss_t = _loss_temperature(method, hp, trainer, temperature)
    low, high = hp["temperature_range"]
    if options.teacher_server_url is not None:
        trainer, why_trainer = _served_trainer(method, trainer, options.teacher_server_url)
    plan.add("distill.trainer", "The TRL trainer that runs it", default=trainer, default_evidence=why_trainer)
    plan.add(
        "distill.loss_temperature",
        "Temperature of the distillation loss (DistillationTrainer also samples at it)",
        given=temperature,
        default=hp["default_temperature"],
        default_evidence=f"{evidence}: T = 1 is the default for language models (range {low} to {high})",
    )
    plan.add(
        "distill.max_new_tokens",
        "Tokens per generated completion (student samples, or teacher completions for sequence-level methods)",
        given=options.max_new_tokens,
        default=hp["max_new_tokens"],
        default_evidence=evidence,
    )
    if options.use_vllm and trainer not in ("DistillationTrainer", "ServerDistillationTrainer"):
        raise InputError(
            "engine_options", f"use_vllm drives DistillationTrainer's student generation; {method} runs {trainer}"
        )
    if method in SEQUENCE:
        _sequence_settings(plan, method, hp, options, rows, completed, teacher)
        return
    beta, lmbda = _student_sampling_settings(plan, hp, options, trainer, loss_t, evidence)
    if trainer == "ServerDistillationTrainer":
        _served_teacher_settings(plan, options, beta)
    _divergence_warnings(plan, method, beta, lmbda, rows, completed)


def _gkd_if_needed(
    plan: Plan, method: str, hp: Any, options: Options, temperature: float | None, trainer: str, why_trainer: str
) -> tuple[str, str]:
    """The trainer and why: a draft samples and scores at one temperature, and an on-policy plan DistillationTrainer
    cannot express (lmbda below 1, a sampling temperature of its own) switches to GKDTrainer."""
    if (
        method == "draft_model_kd"
        and options.sampling_temperature is not None
        and options.sampling_temperature != (temperature or hp["default_temperature"])
    ):
        raise InputError(
            "engine_options",
            f"sampling_temperature {options.sampling_temperature} differs from the loss temperature "
            f"{temperature or hp['default_temperature']}: a draft is distilled at its serving temperature for both "
            "(DistillationTrainer); GKDTrainer could split them but computes its loss at T = 1. Set temperature "
            "or engine_options.serving_temperature instead",
        )
    if method in ON_POLICY and (
        (options.lmbda is not None and options.lmbda < 1)
        or (
            options.sampling_temperature is not None
            and options.sampling_temperature != (temperature or hp["default_temperature"])
        )
    ):
        trainer = "GKDTrainer"
        why_trainer = (
            "GKDTrainer (trl.experimental): DistillationTrainer cannot express this plan, since it samples every "
            "batch from the student (no lmbda below 1) and uses one temperature for sampling and loss"
        )
        plan.warnings.append(
            "trainer switched to GKDTrainer (trl.experimental): DistillationTrainer has no lmbda below 1 and one "
            "temperature for sampling and loss; GKDTrainer's loss runs at T = 1 whatever the sampling temperature"
        )
    return trainer, why_trainer


def _loss_temperature(method: str, hp: Any, trainer: str, temperature: float | None) -> float:
    """The loss temperature (given, else the rules' default), refused outside the range the trainer can use."""
    low, high = hp["temperature_range"]
    loss_t = temperature if temperature is not None else hp["default_temperature"]
    if not low <= loss_t <= high:
        where = (
            "GKDTrainer's loss runs at T = 1"
            if trainer == "GKDTrainer"
            else (
                "sequence-level methods train with plain cross-entropy"
                if trainer == "SFTTrainer"
                else f"{method} takes {low} to {high}"
            )
        )
        raise InputError(
            "temperature",
            f"{temperature} given, but {where}; the sampling temperature of student generations is "
            "engine_options.sampling_temperature",
        )
    return loss_t


def _served_trainer(method: str, trainer: str, url: str) -> tuple[str, str]:
    """The trainer and why with a served teacher (teacher_server_url): on-policy KD only, at an http(s)://host:port
    URL."""
    if trainer != "DistillationTrainer":
        raise InputError(
            "engine_options",
            "teacher_server_url serves the teacher to on-policy KD (on_policy_kd, draft_model_kd at lmbda 1); "
            f"{method} runs {trainer}",
        )
    if not SERVER_URL.fullmatch(url):
        raise InputError("engine_options", f"teacher_server_url {url!r} is not an http(s)://host:port URL")
    return (
        "ServerDistillationTrainer",
        "ServerDistillationTrainer (trl.experimental, may change in any release): the teacher runs behind `trl "
        "vllm-serve` and returns top-k log-probabilities for the student's samples",
    )


def _student_sampling_settings(
    plan: Plan, hp: Any, options: Options, trainer: str, loss_t: float, evidence: str
) -> tuple[Any, Any]:
    """generation.* and the divergence's knobs of the on-policy and token methods; (beta, lmbda)."""
    gen_why = "Generate the student's samples with vLLM (DistillationTrainer's use_vllm): the slow part of on-policy KD"
    plan.add("generation.use_vllm", gen_why, **_option(options, "use_vllm"))
    plan.add(
        "generation.vllm_mode",
        "colocate: vLLM shares the training GPUs; server: a separate `trl vllm-serve` process",
        **_option(options, "vllm_mode"),
    )
    beta = plan.add(
        "distill.beta",
        "Generalised JSD: 0 forward KL(teacher || student), 0.5 JSD, 1 reverse KL",
        given=options.beta,
        default=hp.get("trl_beta", hp.get("beta")),
        default_evidence=evidence,
    )
    lmbda = plan.add(
        "distill.lmbda",
        "Fraction of batches the student samples itself (DistillationTrainer: always 1)",
        given=options.lmbda,
        default=hp.get("trl_lmbda", hp.get("lmbda")),
        default_evidence=evidence,
    )
    plan.add(
        "distill.seq_kd",
        "GKD's teacher-generated sequences (off here: the data's completions or the student's samples)",
        default=bool(hp.get("trl_seq_kd", False)),
        default_evidence=evidence,
    )
    plan.add(
        "distill.sampling_temperature",
        "Temperature of the student's samples (DistillationTrainer: the loss temperature too)",
        given=options.sampling_temperature,
        default=loss_t
        if trainer in ("DistillationTrainer", "ServerDistillationTrainer")
        else hp.get("sampling_temperature", 1.0),
        default_evidence=evidence,
    )
    return beta, lmbda


def _served_teacher_settings(plan: Plan, options: Options, beta: Any) -> None:
    """distill.teacher_server_url and teacher_top_k: what the served teacher returns, and what the loss then sees."""
    plan.add(
        "distill.teacher_server_url",
        "The teacher's vLLM server (start it with `trl vllm-serve --model TEACHER`, which lifts vLLM's 20 log-prob "
        "cap)",
        given=options.teacher_server_url,
    )
    top_k = _llm_rules()["logit_storage"]["top_k"] if beta == 0 else 1
    given_k = options.teacher_top_k
    if given_k is not None and beta > 0 and given_k != 1:
        raise InputError(
            "engine_options",
            f"teacher_top_k {given_k} with beta {beta}: TRL's server distillation supports only top-1 when beta is "
            "above 0",
        )
    plan.add(
        "distill.teacher_top_k",
        "Teacher log-probabilities per token the loss uses, plus one tail bucket for the rest of the mass",
        given=given_k,
        default=top_k,
        default_evidence="beta 0: the top-k of llm_method.yaml logit_storage; beta above 0: TRL supports top-1 only",
    )
    plan.warnings.append(
        "the teacher is served: start `trl vllm-serve --model <teacher>` at distill.teacher_server_url before "
        "train.py; the loss sees the teacher's top-k log-probabilities only (ServerDistillationTrainer is "
        "experimental)"
    )
    if beta > 0:
        top = _llm_rules()["logit_storage"]["top_k"]
        plan.warnings.append(
            f"beta {beta} with a served teacher: TRL's server distillation then uses the teacher's top-1 "
            "log-probability only (plus a tail bucket), a much weaker target than the full distribution; for a served "
            f"target use beta 0 (forward KL) with the top-{top} (engine_options beta 0)"
        )


def _divergence_warnings(plan: Plan, method: str, beta: Any, lmbda: Any, rows: int, completed: int) -> None:
    """Warnings on beta near an endpoint, a sampling lmbda outside on-policy KD and the pruned student; off-policy
    batches need the data's completions."""
    margin = _llm_rules()["thresholds"]["beta_endpoint_margin"]
    if 0 < beta < margin or 1 - margin < beta < 1:
        plan.warnings.append(
            f"beta {beta} is within {margin} of an endpoint: TRL treats exactly 0 and 1 as forward and reverse KL, "
            "but near them the generalised JSD shrinks towards zero (TRL PR 3043); use 0, 0.5 or 1"
        )
    if method in ("token_kd", "prune_then_distil") and lmbda > 0:
        plan.warnings.append(f"lmbda {lmbda} samples from the student: that is on-policy KD, not {method}")
    if method == "prune_then_distil":
        plan.warnings.append(
            "prune_then_distil: the student folder must already be the pruned teacher (NVIDIA ModelOpt or NeMo prune "
            "it); this recipe runs the distillation half (forward KL on the teacher's logits)"
        )
    if lmbda < 1 and completed < rows:
        raise InputError(
            "data",
            f"{rows - completed} of {rows} rows have no completion; {method} at lmbda {lmbda} trains on the data's "
            "completions for the off-policy batches (give completions, or lmbda 1)",
        )


def _serving_temperature(plan: Plan, method: str, hp: Any, options: Options, temperature: float | None) -> float | None:
    """draft_model_kd: the loss (and sampling) temperature is the target's serving temperature; greedy serving (0)
    distils at the rules' low-T stand-in for the argmax target, since TRL divides by T."""
    serving = options.serving_temperature
    if serving is None:
        return temperature
    if method != "draft_model_kd":
        raise InputError(
            "engine_options",
            f"serving_temperature sets a draft model's distillation temperature; {method} "
            "takes temperature (the loss temperature) instead",
        )
    loss_t = serving if serving > 0 else hp["greedy_serving_temperature"]
    if temperature is not None and temperature != loss_t:
        raise InputError(
            "temperature",
            f"{temperature} given with serving_temperature {serving}: a draft is distilled at "
            "its serving temperature; give one of them",
        )
    plan.add(
        "distill.serving_temperature",
        "The temperature the target serves at (0: greedy); the draft is distilled at it",
        given=serving,
    )
    if serving == 0:
        plan.warnings.append(
            f"greedy serving: the draft's target is the teacher's argmax; TRL cannot divide by T = 0, so "
            f"the loss and the draft's samples run at T = {loss_t} (llm_method.yaml "
            "greedy_serving_temperature); judge the draft by greedy acceptance"
        )
    return loss_t


def _sequence_settings(
    plan: Plan, method: str, hp: Any, options: Options, rows: int, completed: int, teacher: str | None
) -> None:
    """Who writes the completions and how: greedy (translation practice) or sampled and answer-checked (reasoning
    traces)."""
    evidence = f"llm_method.yaml {method}"
    if options.beta is not None or options.lmbda is not None:
        raise InputError(
            "engine_options",
            f"beta and lmbda are token-level settings; {method} fine-tunes on teacher text (use token_kd or "
            "on_policy_kd)",
        )
    if completed < rows and teacher is None:
        raise InputError(
            "data",
            f"{rows - completed} of {rows} rows have no completion and no teacher is given to write them; add the "
            "teacher's completions (for an API teacher) or give teacher",
        )
    decoding = plan.add(
        "distill.teacher_decoding",
        "How the teacher writes missing completions: greedy (its most likely answer) or sampled",
        given=options.teacher_decoding,
        default=hp["teacher_decoding"],
        default_evidence=evidence,
    )
    plan.add(
        "distill.samples_per_prompt",
        "Teacher samples per prompt (sampled decoding)",
        given=options.samples_per_prompt,
        default=hp["samples_per_prompt"],
        default_evidence=evidence,
    )
    plan.add(
        "distill.teacher_sampling_temperature",
        "The teacher's sampling temperature",
        given=options.teacher_sampling_temperature,
        default=hp["teacher_sampling_temperature"],
        default_evidence=evidence,
    )
    plan.add(
        "distill.teacher_top_p",
        "The teacher's nucleus-sampling threshold",
        given=options.teacher_top_p,
        default=hp["teacher_top_p"],
        default_evidence=evidence,
    )
    verify = plan.add(
        "distill.verify",
        "Keep only sampled completions trl_verify.py accepts (rejection sampling on the final answer)",
        given=options.verify,
        default=hp["verify"],
        default_evidence=evidence,
    )
    if verify and decoding != "sample":
        raise InputError(
            "engine_options",
            "verify checks sampled traces; set teacher_decoding sample (one greedy answer per prompt leaves nothing "
            "to choose from)",
        )
    if completed < rows:
        how = (
            f"sampled, {plan.value('distill.samples_per_prompt')} per prompt, answer-checked by trl_verify.py"
            if verify
            else "sampled"
            if decoding == "sample"
            else "greedy"
        )
        plan.warnings.append(
            f"{rows - completed} rows have no completion: train.py first generates them with the teacher ({how}, its "
            "own tokenizer)"
        )
    if method == "reasoning_trace_kd" and not verify:
        plan.warnings.append(
            "reasoning traces without an answer check: a trace that reaches a wrong answer teaches confident wrong "
            "reasoning"
        )


def _require_one_batch(plan: Plan, method: str, rows: int, completed: int, batch: int) -> None:
    """Fewer training rows than one global batch: TRL's dataloader yields no step and the run "passes" having
    trained nothing, so refuse here. Sequence-level rows without a completion count once per teacher sample."""
    training = rows - plan.value("data.heldout_rows")
    if method in SEQUENCE and plan.value("distill.teacher_decoding") == "sample":
        training += (rows - completed) * (plan.value("distill.samples_per_prompt") - 1)
    if training < batch:
        raise InputError(
            "global_batch_size",
            f"{batch} is more than the {training} training rows ({rows} rows, "
            f"{plan.value('data.heldout_rows')} held out): no optimizer step would run; lower it or add rows",
        )


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

_ACCELERATE_BASE = {
    "compute_environment": "LOCAL_MACHINE",
    "debug": False,
    "machine_rank": 0,
    "main_training_function": "main",
    "num_machines": 1,
    "rdzv_backend": "static",
    "same_network": True,
    "downcast_bf16": "no",
}
_LAUNCHES: dict[str, dict[str, Any]] = {
    "multi_gpu": {"distributed_type": "MULTI_GPU", "gpu_ids": "all", "mixed_precision": "bf16"},
    "fsdp": {
        "distributed_type": "FSDP",
        "mixed_precision": "bf16",
        "fsdp_config": {
            "fsdp_version": 2,
            "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
            "fsdp_state_dict_type": "FULL_STATE_DICT",
            "fsdp_reshard_after_forward": True,
            "fsdp_cpu_ram_efficient_loading": True,
            "fsdp_offload_params": False,
            "fsdp_activation_checkpointing": False,
        },
    },
    "deepspeed_zero3": {
        "distributed_type": "DEEPSPEED",
        "mixed_precision": "bf16",
        "deepspeed_config": {
            "zero_stage": 3,
            "zero3_init_flag": True,
            "zero3_save_16bit_model": True,
            "offload_optimizer_device": "none",
            "offload_param_device": "none",
            "deepspeed_multinode_launcher": "standard",
        },
    },
}


def _accelerate_yaml(launch: str, processes: int) -> str:
    import yaml

    config = {**_ACCELERATE_BASE, **_LAUNCHES[launch], "num_processes": processes, "use_cpu": False}
    if launch == "multi_gpu" and processes == 1:
        config = {**config, "distributed_type": "NO"}
    return (
        "# Accelerate launch config (accelerate launch --config_file accelerate.yaml train.py); TRL ships the same "
        "layouts.\n" + yaml.safe_dump(config, sort_keys=True)
    )


def _accelerate_cpu_yaml() -> str:
    import yaml

    config = {
        **_ACCELERATE_BASE,
        "distributed_type": "NO",
        "mixed_precision": "no",
        "num_processes": 1,
        "use_cpu": True,
    }
    return (
        "# One CPU process: the smoke test (accelerate launch --config_file accelerate_cpu.yaml train.py --max-steps "
        "2).\n" + yaml.safe_dump(config, sort_keys=True)
    )


NEXT_STEPS = [
    "Run the CPU smoke test first (2 steps): it proves the recipe, the tokenizers and the data on this machine.",
    "Then launch on GPUs with accelerate.yaml; watch the loss in metrics.json and read generation_evidence.json: the "
    "student's held-out NLL, its KL from the teacher and next-token agreement, and completions side by side.",
    "For a draft model, measure the acceptance rate with the target at serving settings; for reasoning, the answer "
    "accuracy on held-out problems.",
]


def commands(out_dir: Path) -> dict[str, str]:
    """Launch commands, every path shell-quoted: a folder named 'x; touch marker; #' stays one argument."""
    import shlex

    script, cpu, gpu = (
        shlex.quote(str(out_dir / name)) for name in ("train.py", "accelerate_cpu.yaml", "accelerate.yaml")
    )
    return {
        "CPU smoke test (2 steps)": f"accelerate launch --config_file {cpu} {script} --max-steps 2 --cpu",
        "GPUs, one machine": f"accelerate launch --config_file {gpu} {script}",
        # accelerate's num_processes counts every process of the job (it runs num_processes // num_machines per machine)
        "several machines": (
            f"accelerate launch --config_file {gpu} --num_machines NODES --num_processes TOTAL_GPUS --machine_rank "
            f"RANK --main_process_ip HOST --main_process_port 29500 {script} --output-dir /shared/run  # on every "
            "machine"
        ),
    }


def _readme(plan: Plan) -> str:
    cmds = commands(Path("."))
    rows = "\n".join(f"| `{k}` | {s.value!r} | {s.why} |" for k, s in plan.settings.items())
    method, trainer = plan.value("distill.method"), plan.value("distill.trainer")
    if trainer == "DistillationTrainer":
        loss = (
            f"generalised JSD (beta {plan.value('distill.beta')}) on the student's own samples, every batch "
            "(on-policy; TRL's stable DistillationTrainer)"
        )
    elif trainer == "ServerDistillationTrainer":
        loss = (
            f"generalised JSD (beta {plan.value('distill.beta')}) on the student's own samples against the top "
            f"{plan.value('distill.teacher_top_k')} log-probabilities of a teacher served at "
            f"{plan.value('distill.teacher_server_url')} (TRL's experimental ServerDistillationTrainer)"
        )
    elif trainer == "GKDTrainer" and plan.value("distill.lmbda") == 0:
        loss = (
            "forward KL on every next-token distribution of the data's completions (GKDTrainer at lmbda 0, beta "
            f"{plan.value('distill.beta')}: DistillationTrainer cannot train off-policy)"
        )
    elif trainer == "GKDTrainer":
        loss = (
            f"generalised JSD (beta {plan.value('distill.beta')}) on the student's samples for a fraction lmbda "
            f"{plan.value('distill.lmbda')} of batches (GKDTrainer: DistillationTrainer has no lmbda below 1)"
        )
    else:
        loss = "cross-entropy on the teacher's completions (SFTTrainer)"
    notes = "".join(f"- {w}\n" for w in plan.warnings)
    trl_version, fields_checked = plan.value("versions.trl"), plan.value("versions.trl_fields_checked")
    launch, processes = plan.value("launch.accelerate"), plan.value("launch.num_processes")
    return f"""# Language-model distillation recipe (TRL + Accelerate)

Written by `kd-skill export --engine trl`. `train.py` distils `{plan.value("models.teacher")}` into
`{plan.value("models.student")}` with `{method}`: {loss}, loss at T = {plan.value("distill.loss_temperature")}.
Every setting, why it has its value and where the value came from are in `config.yaml`.
Written for TRL {trl_version} ({fields_checked}); DistillationTrainer is stable,
GKDTrainer lives in `trl.experimental` and may move between releases.
{f"{chr(10)}Notes:{chr(10)}{notes}" if notes else ""}
{_memory_section(plan)}
Needs: Python 3.10+, `torch`, `transformers`, `trl`, `datasets`, `accelerate`, `pyyaml`
(`pip install "knowledge-distillation-deep[llm]"` brings the versions this was tested with).

## Run it

| where | command |
|---|---|
| CPU smoke test (2 steps) | `{cmds["CPU smoke test (2 steps)"]}` |
| GPUs, one machine | `{cmds["GPUs, one machine"]}` |
| several machines (run on each) | `{cmds["several machines"].split("  #")[0]}` |

- `accelerate.yaml` holds the launch (`{launch}`, {processes} processes); edit
  `num_processes` to your GPU count. On several machines accelerate counts every process of the job, so the command
  passes the total (`--num_processes TOTAL_GPUS`, machines x GPUs each). DeepSpeed needs `pip install deepspeed`.
- `train.global_batch_size` is the batch of one optimizer step over all processes: each process takes
  global / (processes x accumulation steps).
- Token-level methods stop at start when teacher and student tokenizers differ (a mismatch trains on the wrong targets);
  one tokenizer with two `vocab_size` values is aligned at start (the larger head is cut to the smaller when that
  covers the tokenizer, else the run stops in one line).
- Reasoning traces: `trl_verify.py` is the answer check for sampled teacher traces (rows with an `answer` field), a
  hook to edit for your task: by default numbers are compared by value (0.50 = 1/2 = \\frac{{1}}{{2}}), a `\\boxed{{}}`
  answer is read first, and other answers must be or end the last line; for code, run the tests there.
  Traces cut at `max_new_tokens` are counted in the log. Rows that
  already carry a (short) chain are trained on as given, so one file mixes short and long chains (students of 3B or
  less learn better from the mix, Li et al. 2025).
- At the end, `generation_evidence.json` (beside `metrics.json`) scores the held-out rows (`data.heldout_rows`, never
  trained on) with both models: NLL per token, token KL from teacher to student, greedy next-token agreement, and a
  few completions side by side. `metrics.json` adds `heldout_expected_acceptance_rate`: the mean over held-out
  positions of sum(min(p_student, p_teacher)), the per-token acceptance probability of speculative sampling at T = 1
  (how a draft model is judged; for other students, one more measure of closeness).
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
    for helper in HELPERS:
        shutil.copyfile(TEMPLATE.with_name(helper), out_dir / helper)
    for name, text in files.items():
        (out_dir / name).write_text(text, encoding="utf-8")
    return [out_dir / "train.py", *(out_dir / h for h in HELPERS), *(out_dir / name for name in files)]


MAX_HEADER_BYTES = 100 * 2**20  # a safetensors header (JSON) larger than this is not read


def param_count(model: str | None) -> int | None:
    """Parameters of a local model folder from its safetensors headers (no weights read); None for a hub id."""
    if not model or not Path(model).is_dir():
        return None
    total = 0
    files = sorted(Path(model).glob("*.safetensors"))
    for file in files:
        try:
            with file.open("rb") as handle:
                size = int.from_bytes(handle.read(8), "little")
                if size > MAX_HEADER_BYTES:
                    return None
                header = json.loads(handle.read(size))
        except (OSError, ValueError):
            return None
        for name, entry in header.items():
            if name != "__metadata__" and isinstance(entry, dict):
                count = 1
                for dim in entry.get("shape", []):
                    count *= int(dim)
                total += count
    return total or None


def kv_bytes_per_token(model: str | None, dtype_bytes: int = 2) -> int | None:
    """KV cache bytes per token from config.json: 2 (K and V) x layers x kv_heads x head_dim x bytes (bf16: 2)."""
    if not model or not Path(model).is_dir():
        return None
    config = _read_json(Path(model) / "config.json", MAX_CONFIG_BYTES)
    if isinstance(config, dict) and isinstance(config.get("text_config"), dict):
        config = {**config, **config["text_config"]}
    if not isinstance(config, dict):
        return None
    try:
        layers, heads = int(config["num_hidden_layers"]), int(config["num_attention_heads"])
        kv_heads = int(config.get("num_key_value_heads") or heads)
        head_dim = int(config.get("head_dim") or int(config["hidden_size"]) // heads)
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None
    return 2 * layers * kv_heads * head_dim * dtype_bytes


def _generation_memory(plan: Plan, teacher: str | None, t_params: int | None, s_params: int | None) -> str:
    """Sequence-level methods: the teacher generates first (weights + KV cache), then SFT holds the student alone."""
    from skill.recommend_llm import human_bytes

    spec = _llm_rules()["memory"]
    student = (
        f"Training: SFT then holds the student alone ({s_params:,} parameters, about "
        f"{human_bytes(s_params * spec['student_training_bytes_per_param'])} of training state before activations).\n"
        if s_params
        else "Training: SFT then holds the student alone.\n"
    )
    if teacher is None:
        return (
            "## Memory plan\n\nThe data carries the teacher's completions (an API teacher): nothing to "
            f"generate.\n{student}"
        )
    new_tokens = plan.value("distill.max_new_tokens")
    samples = plan.value("distill.samples_per_prompt") if plan.value("distill.teacher_decoding") == "sample" else 1
    in_flight = 8 * samples  # train.py generates 8 prompts at a time, each with `samples` sequences
    weights = (
        f"{human_bytes(t_params * spec['teacher_bytes_per_param']['bf16'])} of bf16 weights ({t_params:,} parameters)"
        if t_params
        else "its bf16 weights (2 bytes per parameter)"
    )
    kv = kv_bytes_per_token(teacher)
    if kv is not None:
        tokens = in_flight * plan.value("data.max_length")
        cache = (
            f"KV cache {kv:,} bytes per token (2 x layers x kv_heads x head_dim x 2 bytes, from its config.json): "
            f"{in_flight} sequences ({samples} per prompt, 8 prompts a batch) x up to "
            f"{plan.value('data.max_length'):,} tokens = {human_bytes(kv * tokens)}"
        )
    else:
        cache = (
            "KV cache 2 x layers x kv_heads x head_dim x 2 bytes per token (the teacher's config.json was not read "
            f"here), for {in_flight} sequences of up to {new_tokens:,} new tokens"
        )
    return (
        f"## Memory plan\n\nGeneration (before training, one process): the teacher holds {weights} + {cache}, "
        'plus activations. train.py loads it with `device_map="auto"` on GPUs, so weights that one GPU cannot hold '
        "spread over every visible GPU. For long traces at scale, generate with vLLM instead (paged KV cache, "
        "batched sampling) and put the completions in the data: train.py then skips generation and fine-tunes "
        "directly. This recipe does not run vLLM for the teacher itself.\n" + student
    )


def _memory_section(plan: Plan) -> str:
    """The teacher's memory per choice, from the models' sizes (safetensors headers) and the rules' bytes per
    parameter."""
    from skill.recommend_llm import memory_plan

    method = plan.value("distill.method")
    teacher, student = plan.value("models.teacher"), plan.value("models.student")
    t_params, s_params = param_count(teacher), param_count(student)
    if method in SEQUENCE:
        return _generation_memory(plan, teacher, t_params, s_params)
    if t_params is None:
        spec = _llm_rules()["memory"]
        return (
            "## Memory plan\n\nThe teacher is a hub id, so its size was not read at export. Per choice: bf16 weights "
            f"are {spec['teacher_bytes_per_param']['bf16']:g} bytes per parameter on one GPU, that divided by N under "
            "FSDP/ZeRO-3 over N GPUs, or none in the trainer with the teacher behind a vLLM server (top-k "
            "log-probabilities only); the student's training state is about "
            f"{spec['student_training_bytes_per_param']:g} bytes per parameter.\n"
        )
    memo = memory_plan(t_params, s_params)
    if plan.value("distill.trainer") == "ServerDistillationTrainer":
        memo["choices"]["vllm_server"] = "chosen here: " + memo["choices"]["vllm_server"]
    lines = "\n".join(f"| {k} | {v} |" for k, v in memo["choices"].items())
    return (
        f"## Memory plan\n\nTeacher {t_params:,} parameters"
        + (f", student {s_params:,}" if s_params else "")
        + f" (read from the safetensors headers). {memo['note']}\n\n"
        f"| choice | memory |\n|---|---|\n{lines}\n\nUse `accelerate.yaml` with fsdp or deepspeed_zero3 "
        "(engine_options.accelerate) to shard; DistillationTrainer prepares the frozen teacher for DeepSpeed itself.\n"
    )
