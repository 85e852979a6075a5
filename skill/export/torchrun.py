"""The torchrun engine: a self-contained folder with a DDP train.py, config.yaml (every setting with its why and
evidence) and a README with the launch commands. The training script is a real file beside this module
(templates/train.py) with its helpers (templates/kd_recipe/), copied as is; the losses and nets are always vendored
from this package into kd_vendor/, so the folder trains the same whatever is installed later."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from skill.errors import InputError
from skill.export.checks import check_import_path, check_safetensors, csv_shape, npz_shape, runner_net_params
from skill.export.opened import is_file, local_path
from skill.export.plan import Plan, read_report, report_dataset
from skill.export.request import RUNNER_NETS, ExportRequest, is_import_path
from skill.rules import get_rules

TEMPLATE = Path(__file__).with_name("templates") / "train.py"
LLM_METHODS = ("token_kd", "on_policy_kd", "sequence_kd", "reasoning_trace_kd", "draft_model_kd", "prune_then_distil")
VENDORED = ("losses.py", "nets.py")
HELPERS = TEMPLATE.parent / "kd_recipe"


class TorchrunOptions(BaseModel):
    """torchrun's engine options: what the run writes for the release check (kd-skill release-check)."""

    model_config = ConfigDict(extra="forbid")

    groups: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="A .npz array (one entry per test row) or a .csv column "
        "naming each test row's group, saved with the predictions for the bias check",
    )
    student_sizes: list[int] | None = Field(
        None,
        min_length=1,
        max_length=3,
        description="Extra first-layer widths of runner-net "
        "students, distilled with the same settings, for the capacity-cliff curve",
    )
    alpha: float | None = Field(
        None,
        ge=0,
        le=1,
        description="The plan's size-versus-accuracy priority (kd_choose_alpha) the release check scores at",
    )
    alpha_reason: str | None = Field(None, min_length=1, max_length=500, description="Why this alpha")


def _options(request: ExportRequest) -> TorchrunOptions:
    from skill.errors import describe_validation_error

    try:
        return TorchrunOptions.model_validate(request.engine_options or {})
    except ValidationError as exc:
        allowed = ", ".join(TorchrunOptions.model_fields)
        raise InputError(
            "engine_options", f"torchrun takes no engine options but {allowed}: {describe_validation_error(exc)}"
        ) from exc


def _rules() -> dict[str, Any]:
    rules = get_rules()
    return {
        "methods": rules.method["methods"],
        "ece_bins": rules.failure_modes["modes"]["temperature_blindness"]["thresholds"]["ece_bins"],
        "raw_limits": rules.failure_modes["raw_limits"],
    }


def _quick_defaults() -> dict[str, Any]:
    """The quick distill's own defaults (its config model is torch-free), so an export without a report matches it."""
    from skill.distill.config import DistillConfig

    return {name: f.default for name, f in DistillConfig.model_fields.items()}


def _model_spec(value: str, field: str, request: ExportRequest) -> str:
    if value in RUNNER_NETS:
        return value
    if not is_import_path(value):
        raise InputError(field, f"{value!r} is neither 'mlp', 'cnn' nor an import path 'package.module:factory'")
    if request.check_imports:
        check_import_path(value, field)
    return value


def _data(plan: Plan) -> tuple[str, int | None, int | None]:
    """The data source as train.py will read it, plus (features, classes) when they can be read without running code."""
    request = plan.request
    source = request.data
    if source is None:
        reported = report_dataset((plan.report or {}).get("dataset"))
        if reported == "digits":
            source = "digits"
        else:
            raise InputError(
                "data",
                "is required: 'digits', a .npz/.csv file or an import path 'package.module:factory'"
                + (f" (the report's dataset {reported!r} is a file name, not a path)" if reported else ""),
            )
    if source == "digits":
        return "digits", 64, 10
    if is_import_path(source) and not source.endswith((".npz", ".csv")):
        if request.check_imports:
            check_import_path(source, "data")
        return source, None, None
    path = local_path(source)
    if path.suffix not in (".npz", ".csv"):
        raise InputError(
            "data",
            f"{source!r}: accepted are 'digits', a .npz or .csv file, or an import path 'package.module:factory'",
        )
    if not is_file(path):
        raise InputError("data", f"{source!r} does not exist (resolved to {path})")
    features, classes = npz_shape(path) if path.suffix == ".npz" else csv_shape(path, request.label_column)
    return str(path), features, classes


def resolve(request: ExportRequest) -> Plan:
    """Every setting of the recipe, checked; raises InputError naming the field on anything train.py would refuse."""
    options = _options(request)
    if request.method in LLM_METHODS:
        raise InputError(
            "method",
            f"{request.method!r} distils a language model; export it with engine 'trl' (torchrun takes response, "
            "relation, feature, cascade)",
        )
    report = read_report(request.from_report) if request.from_report else None
    plan = Plan(request=request, report=report)
    plan.warnings += plan.report_warnings()
    rs = plan.report_settings()
    rules, quick = _rules(), _quick_defaults()
    tuning, outcome = plan.tuning_evidence(), plan.outcome_evidence()

    topology = request.topology or rs.get("topology") or "teacher_student"
    if topology != "teacher_student":
        raise InputError(
            "from_report" if request.topology is None else "topology",
            f"topology {topology!r} is not exported; torchrun recipes are teacher_student (ensemble, online and self "
            "stay in the quick distill)",
        )
    source, features, classes = _data_settings(plan, request, options, quick)
    _model_settings(plan, request, rs, quick, features, classes)
    _distill_settings(plan, request, rs, rules, quick, tuning)
    _train_settings(plan, request, options, rs, quick, features)
    _eval_settings(plan, rules)
    _release_settings(plan, request, options, outcome)
    return plan


def _data_settings(
    plan: Plan, request: ExportRequest, options: TorchrunOptions, quick: dict[str, Any]
) -> tuple[str, int | None, int | None]:
    """data.*: what train.py reads, checked now; (source, input features, classes), the features without a group
    column."""
    source, features, classes = _data(plan)
    plan.add(
        "data.source",
        "What train.py trains and tests on (.npz/.csv read without pickle; a factory is called with 'train' and "
        "'test')",
        given=request.data,
        reported=source if request.data is None else None,
        report_evidence="the quick distill's dataset",
    )
    plan.settings["data.source"].value = source
    plan.add("data.label_column", "Label column of a CSV (default: the last)", given=request.label_column)
    plan.add(
        "data.num_classes",
        "Output classes of the runner nets (read from the labels at export; null: read by train.py)",
        default=classes,
        default_evidence="read from the data's labels at export" if classes else None,
    )
    plan.add(
        "data.test_fraction",
        "Held-out share when a CSV has no split (the quick distill's)",
        default=quick["test_fraction"],
        default_evidence="the quick distill's default",
    )
    if options.groups is not None and not (str(source).endswith((".npz", ".csv"))):
        raise InputError(
            "engine_options",
            f"groups {options.groups!r} is read from a .npz array or a .csv column; this data is {source!r}",
        )
    plan.add(
        "data.groups",
        "Group of each test row (a .npz array or .csv column), saved with the predictions for the bias check",
        given=options.groups,
    )
    if options.groups is not None and str(source).endswith(".csv") and features:
        features -= 1  # the group column is evidence, not an input: train.py drops it from the features
    return source, features, classes


def _model_settings(
    plan: Plan,
    request: ExportRequest,
    rs: dict[str, Any],
    quick: dict[str, Any],
    features: int | None,
    classes: int | None,
) -> None:
    """teacher.* and student.*: the nets (a runner net, or the user's factory), their sizes checked against the data."""
    arch = rs.get("arch") if rs.get("arch") in RUNNER_NETS else None
    teacher = _model_spec(request.teacher or arch or "mlp", "teacher", request)
    student = _model_spec(request.student or arch or "mlp", "student", request)
    plan.add(
        "teacher.model",
        "The teacher: a runner net or your factory()",
        default=teacher,
        default_evidence="set in the export request"
        if request.teacher
        else ("the quick distill's arch" if arch else "the runner's MLP"),
    )
    plan.add(
        "teacher.hidden",
        "Hidden sizes of a runner-net teacher",
        given=request.teacher_hidden,
        reported=rs.get("teacher_hidden"),
        report_evidence="the quick distill's teacher",
        default=quick["teacher_hidden"],
        default_evidence="the quick distill's default",
    )
    weights = None
    if request.teacher_weights:
        path = local_path(request.teacher_weights)
        if path.suffix != ".safetensors" or not is_file(path):
            raise InputError(
                "teacher_weights",
                f"{request.teacher_weights!r} is not an existing .safetensors file (pickled checkpoints are refused)",
            )
        check_safetensors(path, "teacher_weights")
        weights = str(path)
    plan.add(
        "teacher.weights",
        "A trained teacher's state dict (safetensors: tensors only, no code); null: a runner-net teacher is trained "
        "first",
        given=weights,
    )
    plan.add(
        "teacher.epochs",
        "Epochs when train.py trains the runner-net teacher first (cross-entropy)",
        given=request.teacher_epochs,
        default=quick["teacher_epochs"],
        default_evidence="the quick distill's default",
    )
    plan.add(
        "student.model",
        "The student: a runner net or your factory()",
        default=student,
        default_evidence="set in the export request"
        if request.student
        else ("the quick distill's arch" if arch else "the runner's MLP"),
    )
    plan.add(
        "student.hidden",
        "Hidden sizes of a runner-net student",
        given=request.student_hidden,
        reported=rs.get("student_hidden"),
        report_evidence=(
            f"the quick distill's student ({_ratio((plan.report or {}).get('compression_ratio'))} smaller than its "
            "teacher)"
        ),
        default=[32],
        default_evidence="a small MLP for the demo; size it from your budget (kd_score_distillation)",
    )
    _check_sizes(plan, features, classes)


def _distill_settings(
    plan: Plan,
    request: ExportRequest,
    rs: dict[str, Any],
    rules: dict[str, Any],
    quick: dict[str, Any],
    tuning: str | None,
) -> None:
    """distill.*: the method and its loss weights, from the request, the quick distill's tuning, or method.yaml."""
    response_hp = rules["methods"]["response"]["hyperparameters"]
    method = plan.add(
        "distill.method",
        "What the student learns from the teacher",
        given=request.method,
        reported=rs.get("method") if rs.get("method") in ("response", "relation", "feature", "cascade") else None,
        report_evidence=f"the quick distill: {rs.get('method_reason', 'its method')}",
        default="response",
        default_evidence="kd_recommend_method's first branch (same task): soft labels",
    )
    plan.add(
        "distill.response_loss",
        "Soft loss: Hinton KD, or decoupled KD (DKD)",
        given=request.response_loss,
        default=quick["response_loss"],
        default_evidence="the quick distill's default",
    )
    plan.add(
        "distill.relation_loss",
        "Relation method's loss",
        given=request.relation_loss,
        default=quick["relation_loss"],
        default_evidence=(
            "the quick distill's default: SP measured about +2.5 points over logit KD on a capacity-limited student"
        ),
    )
    plan.add(
        "distill.topology",
        "One teacher, one student",
        default="teacher_student",
        default_evidence="the only exported topology",
    )
    plan.add(
        "distill.temperature",
        "Softens both distributions; the soft loss is multiplied by T^2 (Hinton et al. 2015)",
        given=request.temperature,
        reported=_float(rs.get("temperature")),
        report_evidence=tuning,
        default=float(response_hp["default_temperature"]),
        default_evidence="method.yaml default_temperature: the one setting never clearly harmful in our measurements",
    )
    plan.add(
        "distill.kd_loss_weight",
        "Weight of the soft term; the hard cross-entropy gets 1 - weight",
        given=request.kd_loss_weight,
        reported=_float(rs.get("kd_loss_weight")),
        report_evidence=tuning,
        default=float(response_hp["kd_loss_weight"]),
        default_evidence="method.yaml: 0.5 versus 0.9 made no measurable difference in our measurements",
    )
    for key, section, why in (
        ("dkd_alpha", "response", "DKD target-class term weight (mdistiller's default)"),
        ("dkd_beta", "response", "DKD non-target term weight (mdistiller's default)"),
        ("sp_weight", "relation", "Similarity-preserving term weight"),
        ("rkd_distance_weight", "relation", "RKD distance term weight"),
        ("rkd_angle_weight", "relation", "RKD angle term weight"),
        ("hint_loss_weight", "feature", "FitNets hint term weight"),
    ):
        plan.add(
            f"distill.{key}",
            why,
            default=float(rules["methods"][section]["hyperparameters"][key]),
            default_evidence=f"method.yaml {section}.{key}",
        )
    if method == "feature":
        plan.warnings.append(
            "feature exports the FitNets hint: the models must return (logits, features, ...); attention transfer "
            "stays in the quick distill"
        )
    if method == "cascade":
        plan.add(
            "distill.cascade_threshold",
            "Serving: the student answers above this confidence, the teacher otherwise",
            given=request.cascade_threshold,
            default=float(rules["methods"]["cascade"]["hyperparameters"]["confidence_threshold"]),
            default_evidence="method.yaml cascade.confidence_threshold",
        )
    if request.teacher_cache and method in ("relation", "feature"):
        raise InputError(
            "teacher_cache",
            f"caches logits only, but method {method!r} needs the teacher's features every step; set teacher_cache "
            "false",
        )
    plan.add(
        "distill.teacher_cache",
        "Teacher logits computed once in a first pass and cached (float16) instead of a teacher forward every step",
        given=request.teacher_cache or None,
        default=False,
        default_evidence="off: right for deterministic inputs only (no random augmentation)",
    )


def _train_settings(
    plan: Plan,
    request: ExportRequest,
    options: TorchrunOptions,
    rs: dict[str, Any],
    quick: dict[str, Any],
    features: int | None,
) -> None:
    """train.*: the schedule, batch and seed, the same for one process or many."""
    plan.add(
        "train.epochs",
        "Student epochs; distillation needs a longer schedule than cross-entropy (at least twice)",
        given=request.epochs,
        reported=rs.get("epochs"),
        report_evidence=_epochs_evidence(rs),
        default=quick["epochs"],
        default_evidence="the quick distill's default",
    )
    batch = plan.add(
        "train.global_batch_size",
        "Samples per optimizer step over all processes and accumulation steps: the same for 1 or N processes",
        given=request.global_batch_size,
        default=quick["batch_size"],
        default_evidence="the quick distill's batch size",
    )
    plan.add(
        "train.accumulation_steps",
        "Micro-batches per step on each process; each micro-batch loss is divided by the group size",
        default=request.accumulation_steps,
        default_evidence="set in the export request"
        if request.accumulation_steps > 1
        else "1: raise it when a micro-batch does not fit",
    )
    if batch % request.accumulation_steps:
        raise InputError(
            "accumulation_steps", f"{request.accumulation_steps} does not divide global_batch_size {batch}"
        )
    plan.add(
        "train.learning_rate",
        "Adam, constant (the quick distill's schedule, so its tuning carries over)",
        given=request.learning_rate,
        default=quick["learning_rate"],
        default_evidence="the quick distill's default",
    )
    plan.add(
        "train.seed",
        "Initial weights and shuffling; the same on every rank",
        given=request.seed,
        reported=rs.get("seed"),
        report_evidence="the quick distill's seed",
        default=0,
    )
    plan.add(
        "train.amp",
        "auto: bfloat16 (or float16 with a gradient scaler) on GPU, off on CPU; 'off' disables it",
        default="auto",
    )
    plan.add(
        "train.baseline",
        "Also train a from-scratch student with the same budget and seed: the gain needs it",
        given=request.baseline or None,
        default=False,
        default_evidence="off; turn on (or pass --baseline) to measure the gain at full scale",
    )
    plan.add(
        "train.workers", "DataLoader worker processes per rank (0 for in-memory arrays)", default=0 if features else 2
    )
    if options.student_sizes and plan.value("student.model") not in RUNNER_NETS:
        raise InputError(
            "engine_options", "student_sizes sizes runner-net students ('mlp', 'cnn'); this student is a factory"
        )
    plan.add(
        "train.student_sizes",
        "Extra student widths distilled with the same settings: the size-accuracy curve of the capacity-cliff check",
        given=options.student_sizes,
        default=None,
        default_evidence="none: pass --student-sizes W1,W2 to train.py for the curve",
    )


def _eval_settings(plan: Plan, rules: dict[str, Any]) -> None:
    """eval.*: how train.py measures the student, within the release check's raw limits."""
    plan.add(
        "eval.ece_bins",
        "Equal-width confidence bins for the expected calibration error",
        default=int(rules["ece_bins"]),
        default_evidence="failure_modes.yaml temperature_blindness.ece_bins",
    )
    raw = rules["raw_limits"]
    plan.add(
        "eval.max_prediction_rows",
        "Test rows whose probabilities predictions.npz keeps (a seeded sample beyond): what one release check reads",
        default=int(raw["max_samples"]),
        default_evidence="failure_modes.yaml raw_limits.max_samples",
    )
    plan.add(
        "eval.max_prediction_values",
        "Rows x classes x 2 (student and teacher) kept at most",
        default=int(raw["max_values"]),
        default_evidence="failure_modes.yaml raw_limits.max_values",
    )
    plan.add(
        "eval.throughput_batch",
        "Batch at which throughput is measured (latency is measured at batch 1)",
        default=256,
        default_evidence="the quick distill's throughput batch",
    )


def _release_settings(plan: Plan, request: ExportRequest, options: TorchrunOptions, outcome: Any) -> None:
    """release.* and evidence.*: what the release check scores the student at, and what the quick distill measured."""
    report_alpha = _float((plan.report or {}).get("alpha"))
    alpha_rule = next(b for b in get_rules().alpha["tree"] if "when" not in b)
    plan.add(
        "release.alpha",
        "Size-versus-accuracy priority the release check scores the student at (kd_choose_alpha)",
        given=options.alpha,
        reported=report_alpha,
        report_evidence="the quick distill's alpha",
        default=float(alpha_rule["alpha"]),
        default_evidence=f"alpha.yaml {alpha_rule['id']}: no deployment context given; choose it with kd_choose_alpha",
    )
    plan.add(
        "release.alpha_reason", "Why this alpha (the distillation-score gate asks for it)", given=options.alpha_reason
    )
    if outcome:
        plan.add(
            "evidence.quick_distill",
            "What the quick distill measured with these settings",
            default=outcome,
            default_evidence=f"from {request.from_report}",
        )


def _ratio(value: Any) -> str:
    """A compression ratio as a person reads it ('25.1x'), whatever the report holds."""
    number = _float(value)
    return f"{number:.1f}x" if number is not None else "?x"


def _epochs_evidence(rs: dict[str, Any]) -> str:
    """The report's epoch budget, and whether its early stopping cut the distilled run short (only then say so)."""
    budget, ran = rs.get("epochs"), rs.get("epochs_run_distilled")
    if ran is None:
        return "the quick distill's budget"
    if budget is not None and ran < budget:
        return f"the quick distill's budget (its distilled student stopped early, after {ran} of {budget} epochs)"
    return f"the quick distill's budget (its distilled student ran all {ran} epochs)"


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _check_sizes(plan: Plan, features: int | None, classes: int | None) -> None:
    """A student larger than its teacher is refused here when both are runner nets (else train.py refuses it)."""
    t, s = plan.value("teacher.model"), plan.value("student.model")
    if "cnn" in (t, s) and features is not None and int(round(features**0.5)) ** 2 != features:
        raise InputError(
            "teacher" if t == "cnn" else "student",
            f"cnn needs square single-channel images; the data has {features} features",
        )
    if t in RUNNER_NETS and s in RUNNER_NETS and features and classes:
        tp = runner_net_params(t, features, list(plan.value("teacher.hidden")), classes)
        sp = runner_net_params(s, features, list(plan.value("student.hidden")), classes)
        if sp > tp:
            raise InputError(
                "student_hidden",
                f"{plan.value('student.hidden')} gives the student {sp:,} parameters, more than the teacher's {tp:,}; "
                "choose smaller widths",
            )
        plan.warnings.append(f"sizes: teacher {tp:,} parameters, student {sp:,} ({tp / sp:.1f}x smaller)")


# ---- writing the folder --------------------------------------------------------------------------


def _yaml(plan: Plan) -> str:
    """config.yaml: sections of {value, why, evidence}; a header says how it was made."""
    import yaml

    sections: dict[str, dict[str, Any]] = {}
    for key, s in plan.settings.items():
        section, name = key.split(".", 1)
        leaf = {"value": s.value, "why": s.why}
        if s.evidence:
            leaf["evidence"] = s.evidence
        sections.setdefault(section, {})[name] = leaf
    header = (
        "# Written by `kd-skill export --engine torchrun` (knowledge-distillation-deep).\n"
        "# train.py reads each `value`; `why` says what the setting does, `evidence` where the value came from.\n"
    )
    body = yaml.safe_dump(sections, sort_keys=False, width=140, allow_unicode=True)
    notes = yaml.safe_dump({"notes": plan.warnings}, sort_keys=False, width=140) if plan.warnings else ""
    return header + body + notes


def commands(out_dir: Path) -> dict[str, str]:
    """Launch commands, the folder shell-quoted: a folder named 'x; touch marker; #' stays one argument."""
    import shlex

    script = shlex.quote(str(out_dir / "train.py"))
    return {
        "1 CPU": f"python {script} --cpu",
        "1 GPU": f"torchrun --standalone --nproc_per_node 1 {script}",
        "N GPUs, one machine": f"torchrun --standalone --nproc_per_node N {script}",
        "several nodes": (
            f"torchrun --nnodes NODES --nproc_per_node GPUS_PER_NODE --rdzv_backend c10d --rdzv_endpoint HOST:29500 "
            f"--rdzv_id JOB {script} --output-dir /shared/run  # the same command on every node"
        ),
        "CPU processes (gloo)": f"torchrun --standalone --nproc_per_node 2 {script} --cpu",
    }


def _readme(plan: Plan) -> str:
    cmds = commands(Path("."))
    rows = "\n".join(
        f"| `{k}` | {s.value!r} | {s.why} |" for k, s in plan.settings.items() if not k.startswith("evidence")
    )
    evidence = plan.settings.get("evidence.quick_distill")
    notes = "".join(f"{chr(10)}- {w}" for w in plan.warnings)
    notes = f"{chr(10)}Read before spending compute:{notes}{chr(10)}" if notes else ""
    teacher, student, method = (plan.value(k) for k in ("teacher.model", "student.model", "distill.method"))
    temperature, kd_weight = plan.value("distill.temperature"), plan.value("distill.kd_loss_weight")
    return f"""# Distillation recipe (torchrun + DDP)

Written by `kd-skill export`. `train.py` distils `{teacher}` into `{student}` with
method `{method}` at T = {temperature} and soft-loss weight {kd_weight};
every setting, its reason and its evidence are in `config.yaml`.
{f"{chr(10)}Evidence: {evidence.value}{chr(10)}" if evidence else ""}{notes}
Needs: Python 3.10+, `torch`, `numpy`, `pyyaml` and `safetensors`.
The losses and nets are the copies in `kd_vendor/` here, always (installing or upgrading the package changes nothing);
`kd_recipe/` holds the helpers (the typed settings, process group, data, cached teacher logits, checkpoints,
the release evidence).
User models and data factories (`package.module:factory`) are imported: put their folder on `PYTHONPATH`.

## Run it

| where | command |
|---|---|
| 1 CPU | `{cmds["1 CPU"]}` |
| 2 CPU processes (gloo) | `{cmds["CPU processes (gloo)"]}` |
| 1 GPU | `{cmds["1 GPU"]}` |
| N GPUs, one machine | `{cmds["N GPUs, one machine"]}` |
| several nodes (run on each) | `{cmds["several nodes"].split("  #")[0]}` |

- The backend follows the hardware: nccl on GPUs, gloo on CPUs. AMP (bfloat16, or float16 with a gradient scaler) is on
  for GPUs.
- `train.global_batch_size` is the batch of one optimizer step over all processes: each process takes
  global / (processes x accumulation steps), so 1 or 8 GPUs follow the same optimisation path.
- Every epoch rank 0 writes `checkpoint-<phase>.pt` atomically; start the same command again to resume
  (`--no-resume` starts over). With several nodes, `--output-dir` must be on storage every node sees.
- Outputs in `--output-dir` (default `run/`): `student.safetensors`, `metrics.json` (accuracy, ECE, per-epoch loss and
  time, the shards each rank trained on; the from-scratch baseline with `--baseline`), `log.jsonl`, and the release
  evidence: `predictions.npz` (test labels, student / teacher / baseline probabilities, groups when `data.groups` names
  them; at most `eval.max_prediction_rows` rows) and `evidence.json` (per-class accuracy and support, parameters and
  bytes, latency at batch 1 and throughput, the size-accuracy curve). Check it with `kd-skill release-check run/`.
- `--student-sizes 8,16` also distils students of those first-layer widths with the same settings: the curve the
  capacity-cliff check needs.
- A runner-net teacher without `teacher.weights` is trained first (its weights land in `teacher.safetensors`).
- The saved student is the last epoch's (no early stopping at full scale): validate it on held-out data of your own.
- `train.py` imports and calls the factories named in `config.yaml` (`package.module:factory`): read them before
  running it.
- Flags: `--epochs`, `--teacher-epochs`, `--accumulation-steps`, `--baseline`, `--student-sizes`, `--output-dir`,
  `--no-resume`, `--cpu`, `--config`.

## Settings

| setting | value | why |
|---|---|---|
{rows}
"""


def check(request: ExportRequest) -> None:
    """Export-time checks without writing anything (the MCP tool and the CLI call write, which calls this)."""
    resolve(request)


def write(request: ExportRequest, out_dir: Path) -> list[Path]:
    """Write train.py, config.yaml, README.md and the vendored losses/nets into out_dir; return the files written."""
    plan = resolve(request)
    written: list[Path] = []
    if plan.value("data.source") == "digits":
        plan.settings["data.source"].value = "data/digits.npz"
        plan.settings[
            "data.source"
        ].evidence = "scikit-learn's bundled digits, split 75/25 stratified (seed 0) and saved here"
        written.append(_save_digits(out_dir / "data" / "digits.npz"))
    shutil.copyfile(TEMPLATE, out_dir / "train.py")
    written.append(out_dir / "train.py")
    helpers = out_dir / "kd_recipe"
    helpers.mkdir(exist_ok=True)
    for helper in sorted(HELPERS.glob("*.py")):
        shutil.copyfile(helper, helpers / helper.name)
        written.append(helpers / helper.name)
    vendor = out_dir / "kd_vendor"
    vendor.mkdir(exist_ok=True)
    (vendor / "__init__.py").write_text(
        '"""Copies of knowledge-distillation-deep\'s losses and nets: train.py always uses these, so the folder '
        'trains the same whatever is installed."""\n',
        encoding="utf-8",
    )
    written.append(vendor / "__init__.py")
    source = Path(sys.modules["skill"].__file__ or "").parent / "distill"
    for name in VENDORED:
        shutil.copyfile(source / name, vendor / name)
        written.append(vendor / name)
    (out_dir / "config.yaml").write_text(_yaml(plan), encoding="utf-8")
    (out_dir / "README.md").write_text(_readme(plan), encoding="utf-8")
    written += [out_dir / "config.yaml", out_dir / "README.md"]
    return written


def _save_digits(path: Path) -> Path:
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        (X / 16.0).astype(np.float32), y.astype(np.int64), test_size=0.25, stratify=y, random_state=0
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, X_train=X_train, y_train=y_train, X_test=X_test, y_test=y_test)
    return path
