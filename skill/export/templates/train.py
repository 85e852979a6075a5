#!/usr/bin/env python
"""Distil a teacher into a student with PyTorch DDP, launched by torchrun. Written by `kd-skill export`.

    torchrun --standalone --nproc_per_node 2 train.py            # see README.md for 1 GPU, N GPUs, several nodes
    python train.py                                               # one process works too

Settings come from config.yaml beside this file (each with its reason); flags override a few. The run writes
student.safetensors, metrics.json and the release evidence (predictions.npz, evidence.json) into --output-dir,
checkpoints every epoch (rank 0, atomically) and resumes from the last checkpoint when started again. Bad settings
stop it with one line naming the setting. The losses and nets are the copies in kd_vendor/ beside this file,
always: installing or upgrading the package later never changes what this folder trains.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import Dataset, DistributedSampler

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # this folder first: its kd_vendor/ and kd_recipe/ win over anything installed
from kd_recipe import RecipeError, evidence  # noqa: E402
from kd_recipe.config import load_config, recorded_plan  # noqa: E402
from kd_recipe.data import Batches, data_shape, import_object, length, load_data  # noqa: E402
from kd_recipe.distributed import Dist, atomic_write, log, shard_record  # noqa: E402
from kd_recipe.teacher import TeacherSignal, cache_teacher_logits, split_outputs  # noqa: E402
from kd_recipe.weights import load_weights, probe_outputs, save_weights  # noqa: E402
from kd_vendor import losses, nets  # noqa: E402

LOSSES_FROM = "kd_vendor/losses.py"


# ---- settings ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """Every setting train.py reads, typed. config.yaml holds `section.name` -> {value, why, evidence}; each field
    here is `section_name`. The defaults only serve folders exported before a setting existed."""

    data_source: str = "data/digits.npz"
    data_label_column: str | None = None
    data_num_classes: int | None = None  # null: read from the training labels
    data_test_fraction: float = 0.25  # held-out share when a CSV has no split
    data_groups: str | None = None  # a .npz array / .csv column of test-row groups, for the bias check
    teacher_model: str = "mlp"
    teacher_hidden: list[int] = dataclasses.field(default_factory=lambda: [256, 256])
    teacher_weights: str | None = None  # null: a runner-net teacher is trained here first
    teacher_epochs: int = 30
    student_model: str = "mlp"
    student_hidden: list[int] = dataclasses.field(default_factory=lambda: [32])
    distill_method: str = "response"
    distill_response_loss: str = "kd"
    distill_relation_loss: str = "sp"
    distill_topology: str = "teacher_student"
    distill_temperature: float = 4.0
    distill_kd_loss_weight: float = 0.5
    distill_dkd_alpha: float = 1.0
    distill_dkd_beta: float = 8.0
    distill_sp_weight: float = 1.0
    distill_rkd_distance_weight: float = 1.0
    distill_rkd_angle_weight: float = 2.0
    distill_hint_loss_weight: float = 1.0
    distill_cascade_threshold: float | None = None  # serving only: the student trains as response KD
    distill_teacher_cache: bool = False
    train_epochs: int = 120
    train_global_batch_size: int = 64  # over all processes and accumulation steps: the same path for 1 or N
    train_accumulation_steps: int = 1
    train_learning_rate: float = 3e-3
    train_seed: int = 0
    train_amp: str = "auto"
    train_baseline: bool = False
    train_workers: int = 0
    train_student_sizes: list[int] | None = None  # extra student widths for the capacity curve
    eval_ece_bins: int = 15
    eval_max_prediction_rows: int = 20000  # test rows of probabilities kept in predictions.npz
    eval_max_prediction_values: int = 400000  # rows x classes x 2 models: what the release check reads in one call
    eval_throughput_batch: int = 256


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--config", type=Path, default=HERE / "config.yaml")
    p.add_argument(
        "--output-dir",
        type=Path,
        default=None,
        help="Where checkpoints, the student, metrics.json and the evidence go (default: run/ here)",
    )
    p.add_argument("--epochs", type=int, default=None, help="Student epochs (overrides train.epochs)")
    p.add_argument("--teacher-epochs", type=int, default=None, help="Epochs when the teacher is trained here first")
    p.add_argument("--accumulation-steps", type=int, default=None, help="Micro-batches per optimizer step")
    p.add_argument("--baseline", action="store_true", default=None, help="Also train a from-scratch student")
    p.add_argument(
        "--student-sizes",
        default=None,
        metavar="W1,W2",
        help="Also distil students of these first-layer widths (same settings) for the capacity curve",
    )
    p.add_argument("--no-resume", action="store_true", help="Ignore existing checkpoints and start over")
    p.add_argument("--cpu", action="store_true", help="Stay on the CPU (gloo) even when GPUs are present")
    return p.parse_args(argv)


# ---- models ------------------------------------------------------------------------------------


def build_model(role: str, cfg: Config, features: int, classes: int, hidden: list[int] | None = None) -> nn.Module:
    """A runner net ('mlp' / 'cnn' with hidden sizes) or the user's factory()."""
    kind = getattr(cfg, f"{role}_model")
    if kind in ("mlp", "cnn"):
        side = int(round(features**0.5))
        if kind == "cnn" and side * side != features:
            raise RecipeError(f"{role}.model", f"cnn needs square one-channel images; the data has {features} features")
        hidden = hidden or getattr(cfg, f"{role}_hidden")
        return nets.build(kind, features, hidden, classes, side if kind == "cnn" else None)
    model = import_object(kind, f"{role}.model")()
    if not isinstance(model, nn.Module):
        raise RecipeError(f"{role}.model", f"{kind} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def scaled_hidden(hidden: list[int], width: int) -> list[int]:
    """A student of another width: the first hidden size becomes `width`, later ones keep their ratio to it."""
    return [max(1, round(h * width / hidden[0])) for h in hidden]


class Distiller(nn.Module):
    """The student plus what trains with it (a FitNets regressor), so DDP syncs every trained weight."""

    def __init__(self, student: nn.Module, regressor: nn.Module | None = None) -> None:
        super().__init__()
        self.student = student
        self.regressor = regressor

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        logits, feat = split_outputs(self.student(x))
        projected = self.regressor(feat) if self.regressor is not None and feat is not None else None
        return logits, feat, projected


def distill_loss(
    cfg: Config,
    logits: torch.Tensor,
    feat: torch.Tensor | None,
    projected: torch.Tensor | None,
    y: torch.Tensor,
    t_logits: torch.Tensor,
    t_feat: torch.Tensor | None,
) -> torch.Tensor:
    """(1 - w) * CE + w * soft term (times T^2), plus the relation or hint term of the method."""
    T, w = cfg.distill_temperature, cfg.distill_kd_loss_weight
    if cfg.distill_response_loss == "dkd":
        soft = losses.dkd_loss(logits, t_logits, y, T, cfg.distill_dkd_alpha, cfg.distill_dkd_beta)
    else:
        soft = losses.kd_loss(logits, F.softmax(t_logits / T, dim=1), T)
    loss = (1 - w) * F.cross_entropy(logits, y) + w * soft
    if cfg.distill_method == "relation":  # on features when the nets return them, else on logits
        s, t = (feat if feat is not None else logits), (t_feat if t_feat is not None else t_logits)
        if cfg.distill_relation_loss == "rkd":
            loss = loss + cfg.distill_rkd_distance_weight * losses.rkd_distance(s, t)
            loss = loss + cfg.distill_rkd_angle_weight * losses.rkd_angle(s, t)
        else:
            loss = loss + cfg.distill_sp_weight * losses.similarity_preserving(s, t)
    elif cfg.distill_method == "feature" and projected is not None and t_feat is not None:
        loss = loss + cfg.distill_hint_loss_weight * losses.fitnet_hint(projected, t_feat)
    return loss


# ---- one training phase ------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """What every phase shares, fixed once at setup: the settings, the processes, the data and where files go."""

    cfg: Config
    env: Dist
    train: Dataset
    test: Dataset
    groups: np.ndarray | None
    features: int
    classes: int
    out: Path
    resume: bool
    plan: dict[str, Any] = dataclasses.field(default_factory=dict)  # config.yaml's release facts, read at start


def fit(run: Run, phase: str, model: Distiller, epochs: int, teacher: TeacherSignal | None) -> dict[str, Any]:
    """Train `model` for `epochs` (CE only when teacher is None); checkpoint each epoch; resume when asked."""
    cfg, env = run.cfg, run.env
    accum = cfg.train_accumulation_steps
    micro = cfg.train_global_batch_size // (env.world * accum)  # checked at setup: the global batch is fixed
    model.to(env.device)
    # one process: no DDP wrapper, nothing to all-reduce
    ddp = DDP(model, device_ids=[env.local_rank] if env.cuda else None) if env.world > 1 else None
    net = ddp if ddp is not None else model
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.train_learning_rate)
    amp_dtype = None
    if env.cuda and cfg.train_amp == "auto":  # bfloat16 needs no loss scaling; float16 does
        amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    ckpt = run.out / f"checkpoint-{phase}.pt"
    state: dict[str, Any] = {"epoch": 0, "loss_history": [], "epoch_seconds": [], "shards": []}
    if run.resume and ckpt.is_file():
        saved = torch.load(ckpt, map_location=env.device, weights_only=True)  # tensors and plain values, never code
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scaler.load_state_dict(saved["scaler"])
        state = saved["state"]
        log(
            env,
            f"[{phase}] resumed from {ckpt.name} at epoch {state['epoch']}",
            {"phase": phase, "event": "resumed", "epoch": state["epoch"]},
            run.out,
        )
    resumed_from = int(state["epoch"])
    # drop_last: every rank gets the same number of rows, so no rank waits at an all-reduce the others skip
    sampler: DistributedSampler[int] = DistributedSampler(
        run.train, env.world, env.rank, shuffle=True, seed=cfg.train_seed, drop_last=True
    )
    loader = Batches(run.train, sampler, micro, cfg.train_workers, env.cuda)
    for epoch in range(resumed_from, epochs):
        t0 = time.perf_counter()
        sampler.set_epoch(epoch)  # a new shuffle each epoch, the same on every rank, so shards stay disjoint
        torch.manual_seed(cfg.train_seed + 1000 * epoch + env.rank)  # dropout / augmentation draws survive a resume
        if epoch == resumed_from:  # once per run and phase: enough to show the split, cheap for any size
            shards = shard_record(env, sampler, epoch, length(run.train))
            state["shards"].append(shards)
            log(
                env,
                f"[{phase}] epoch {epoch} shards: rows {shards['rank_rows']} sha256 {shards['rank_sha256']} "
                f"overlap {shards['overlap']}",
                {"phase": phase, "event": "shards", **shards},
                run.out,
            )
        net.train()
        if teacher is not None:
            teacher.model.eval()  # frozen: batch-norm statistics and dropout stay as trained
        loss_sum = torch.zeros((), dtype=torch.float64, device=env.device)  # summed on the device: no sync per step
        seen = 0
        steps = -(-len(loader) // accum)
        for i, (x, y, index) in enumerate(loader):
            x, y = x.to(env.device, non_blocking=True), y.to(env.device, non_blocking=True)
            group_size = accum if i // accum < steps - 1 else len(loader) - (steps - 1) * accum  # the last may be short
            last_in_group = (i + 1) % accum == 0 or i + 1 == len(loader)
            # all-reduce once per optimizer step, not once per micro-batch
            sync = ddp.no_sync() if ddp is not None and not last_in_group else contextlib.nullcontext()
            with sync:
                with torch.autocast("cuda", dtype=amp_dtype) if amp_dtype else contextlib.nullcontext():
                    logits, feat, projected = net(x)
                    if teacher is None:
                        loss = F.cross_entropy(logits.float(), y)
                    else:
                        t_logits, t_feat = teacher(x, index)
                        loss = distill_loss(cfg, logits.float(), feat, projected, y, t_logits, t_feat)
                scaler.scale(loss / group_size).backward()  # the step's gradient is the mean over its micro-batches
            loss_sum += loss.detach().double() * len(y)
            seen += len(y)
            if last_in_group:
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
        total_loss, total_seen = env.sum([float(loss_sum), seen])
        seconds = time.perf_counter() - t0
        state["epoch"] = epoch + 1
        state["loss_history"].append(total_loss / max(total_seen, 1))
        state["epoch_seconds"].append(seconds)
        loss_now = state["loss_history"][-1]
        rows = int(total_seen)
        log(
            env,
            f"[{phase}] epoch {epoch + 1}/{epochs} loss {loss_now:.4f} ({seconds:.2f} s, {rows} samples)",
            {
                "phase": phase,
                "event": "epoch",
                "epoch": epoch + 1,
                "loss": loss_now,
                "seconds": seconds,
                "samples": rows,
            },
            run.out,
        )
        if env.main:
            save_checkpoint(ckpt, model, optimizer, scaler, state)
        env.barrier()  # nobody runs ahead of a checkpoint that is still being written
    model.eval()
    return {**state, "resumed_from_epoch": resumed_from, "micro_batch_size": micro}


def save_checkpoint(
    path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, state: dict[str, Any]
) -> None:
    """The epoch's checkpoint (weights, optimizer, loss scaler, progress), written atomically: a resume reads it."""
    payload = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(),
        "state": state,
    }
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


# ---- setup -------------------------------------------------------------------------------------


def parse_sizes(value: str | None) -> list[int] | None:
    """--student-sizes 8,16 as widths (None when the flag is not given)."""
    if value is None:
        return None
    try:
        return [int(w) for w in str(value).split(",") if w.strip()]
    except ValueError:
        raise RecipeError("--student-sizes", f"{value!r} is not a list of widths like 8,16") from None


def check_student_sizes(cfg: Config, features: int, classes: int, t_params: int) -> None:
    """The curve's extra students (--student-sizes): runner nets only, each with 1 to the teacher's parameters."""
    if not cfg.train_student_sizes:
        return
    if cfg.student_model not in ("mlp", "cnn"):
        raise RecipeError("--student-sizes", f"sizes runner-net students ('mlp', 'cnn'), not {cfg.student_model!r}")
    for width in cfg.train_student_sizes:
        other = build_model("student", cfg, features, classes, scaled_hidden(cfg.student_hidden, width))
        params = evidence.size_of(other)["params"]
        if width < 1 or params > t_params:
            raise RecipeError(
                "--student-sizes",
                f"width {width} gives {params:,} parameters; a student needs 1 to {t_params:,} (the teacher's)",
            )


def prepare(args: argparse.Namespace) -> tuple[Config, Dataset, Dataset, Any, nn.Module, nn.Module, int, int]:
    """Everything that can fail on a bad setting, before any process group exists (so no rank hangs)."""
    flags = {
        "train_epochs": args.epochs,
        "teacher_epochs": args.teacher_epochs,
        "train_baseline": args.baseline,
        "train_accumulation_steps": args.accumulation_steps,
        "train_student_sizes": parse_sizes(args.student_sizes),
    }
    cfg = load_config(Config, args.config, flags)
    world = int(os.environ.get("WORLD_SIZE", 1))
    accum, batch = cfg.train_accumulation_steps, cfg.train_global_batch_size
    if cfg.train_epochs < 1 or accum < 1:
        raise RecipeError("train.epochs" if cfg.train_epochs < 1 else "train.accumulation_steps", "must be at least 1")
    if batch % (world * accum):
        raise RecipeError("train.global_batch_size", f"{batch} is not divisible by {world} processes x {accum} steps")
    train, test, groups = load_data(
        cfg.data_source, HERE, cfg.data_label_column, cfg.data_groups, cfg.data_test_fraction, cfg.train_seed
    )
    features, classes = data_shape(train, cfg.data_num_classes)
    if length(train) < world or length(test) == 0:
        rows = f"{length(train)} training rows for {world} processes and {length(test)} test rows"
        raise RecipeError("data.source", f"{rows}; need at least one row per process and a test set")
    torch.manual_seed(cfg.train_seed)
    teacher = build_model("teacher", cfg, features, classes)
    torch.manual_seed(cfg.train_seed)
    student = build_model("student", cfg, features, classes)
    for role, model in (("teacher", teacher), ("student", student)):
        probe_outputs(role, model, train, classes)
    t_params, s_params = evidence.size_of(teacher)["params"], evidence.size_of(student)["params"]
    if s_params > t_params:
        raise RecipeError(
            "student.model",
            f"the student has {s_params:,} parameters, more than the teacher's "
            f"{t_params:,}; distil into a smaller model",
        )
    check_student_sizes(cfg, features, classes, t_params)
    if cfg.teacher_weights:
        load_weights(teacher, HERE / cfg.teacher_weights, "teacher.weights")  # relative to this folder; absolute stays
    return cfg, train, test, groups, teacher, student, features, classes


def teacher_phase(run: Run, teacher: nn.Module) -> dict[str, Any] | None:
    """A given teacher (weights or a trained factory) is used as is; a runner-net teacher is trained here first (CE)."""
    file = run.out / "teacher.safetensors"
    if run.cfg.teacher_weights or run.cfg.teacher_model not in ("mlp", "cnn"):
        return None
    if file.is_file() and run.resume and not (run.out / "checkpoint-teacher.pt").is_file():
        load_weights(teacher, file, "teacher.weights")  # trained elsewhere and copied here
        return {"loaded_from": file.name}
    torch.manual_seed(run.cfg.train_seed)  # trains, continues an interrupted teacher, or reloads its last checkpoint
    record = fit(run, "teacher", Distiller(teacher), run.cfg.teacher_epochs, None)
    if run.env.main:
        save_weights(teacher, file)
    return record


def regressor_for(run: Run, student: nn.Module, teacher: nn.Module) -> nn.Module | None:
    """FitNets: a linear map from the student's features to the teacher's, trained with the student."""
    if run.cfg.distill_method != "feature":
        return None
    probe = torch.as_tensor(run.train[0][0]).unsqueeze(0).to(run.env.device)
    with torch.no_grad():
        s_feat, t_feat = split_outputs(student.to(run.env.device)(probe))[1], split_outputs(teacher(probe))[1]
    if s_feat is None or t_feat is None:
        raise RecipeError("distill.method", "feature needs models that return (logits, features, ...)")
    return nn.Linear(s_feat.shape[1], t_feat.shape[1])


# ---- the run -----------------------------------------------------------------------------------


def train_all(run: Run, teacher: nn.Module, student: nn.Module) -> tuple[dict[str, nn.Module], dict[str, Any]]:
    """Teacher (when trained here), the distilled student, the extra widths, the from-scratch baseline: each a phase."""
    cfg, env = run.cfg, run.env
    phases: dict[str, Any] = {}
    if (record := teacher_phase(run, teacher)) is not None:
        phases["teacher"] = record
    teacher.to(env.device).eval()
    # deterministic inputs: one teacher pass cached to disk replaces a teacher forward every step
    cached = None
    if cfg.distill_teacher_cache:
        cached = cache_teacher_logits(env, teacher, run.train, run.out, cfg.train_global_batch_size)
    signal = TeacherSignal(teacher, cached)
    distiller = Distiller(student, regressor_for(run, student, teacher))
    phases["student"] = fit(run, "student", distiller, cfg.train_epochs, signal)
    models = {"teacher": teacher, "student": student}
    # the capacity curve: more widths, each distilled from the same teacher with the same settings and seed
    for width in cfg.train_student_sizes or []:
        torch.manual_seed(cfg.train_seed)
        other = build_model("student", cfg, run.features, run.classes, scaled_hidden(cfg.student_hidden, width))
        phase = f"student-w{width}"
        phases[phase] = fit(run, phase, Distiller(other, regressor_for(run, other, teacher)), cfg.train_epochs, signal)
        models[f"student-w{width}"] = other
    if cfg.train_baseline:
        torch.manual_seed(cfg.train_seed)  # the same initial weights and batch order as the distilled student
        models["baseline"] = build_model("student", cfg, run.features, run.classes)
        phases["baseline"] = fit(run, "baseline", Distiller(models["baseline"]), cfg.train_epochs, None)
    return models, phases


def report(run: Run, models: dict[str, nn.Module], phases: dict[str, Any]) -> dict[str, Any]:
    """Every model scored on the whole test set; rank 0 writes the student, metrics.json and the release evidence."""
    cfg, env = run.cfg, run.env
    # keep at most this many test rows of probabilities: what one release check may read (a seeded sample beyond)
    limit = max(1, min(cfg.eval_max_prediction_rows, cfg.eval_max_prediction_values // (2 * run.classes)))
    keep = evidence.kept_rows(length(run.test), limit, cfg.train_seed)
    scored: dict[str, dict[str, Any]] = {}
    probs: dict[str, np.ndarray] = {}
    for name, model in models.items():
        scored[name], kept = evidence.evaluate(
            env, model, run.test, cfg.train_global_batch_size, cfg.eval_ece_bins, run.classes, keep
        )
        if kept is not None and name in ("teacher", "student", "baseline"):
            probs[name] = kept
    sizes = {name: evidence.size_of(models[name])["params"] for name in ("teacher", "student")}
    brief = {name: {k: m[k] for k in ("accuracy", "ece", "test_rows")} for name, m in scored.items()}
    metrics = {
        "world_size": env.world,
        "backend": env.backend,
        "device": env.device.type,
        "losses_from": LOSSES_FROM,
        "global_batch_size": cfg.train_global_batch_size,
        "accumulation_steps": cfg.train_accumulation_steps,
        "teacher": {"params": sizes["teacher"], **brief["teacher"]},
        "student": {"params": sizes["student"], **brief["student"]},
        "baseline": brief.get("baseline"),
        "compression_ratio": sizes["teacher"] / sizes["student"],
        "phases": phases,
    }
    if "baseline" in scored:
        metrics["gain_points"] = (scored["student"]["accuracy"] - scored["baseline"]["accuracy"]) * 100
    if env.main:
        save_weights(models["student"], run.out / "student.safetensors")
        text = json.dumps(metrics, indent=1)
        atomic_write(run.out / "metrics.json", lambda tmp: tmp.write_text(text, encoding="utf-8"))
        settings = {
            "groups": cfg.data_groups,
            "method": cfg.distill_method,
            "temperature": cfg.distill_temperature,
            "kd_loss_weight": cfg.distill_kd_loss_weight,
            "epochs": cfg.train_epochs,
            "student_sizes": cfg.train_student_sizes,
            "world_size": env.world,
            **run.plan,
            "class_names": getattr(run.test, "class_names", None),
        }
        evidence.write_run(
            run.out, run.test, keep, run.groups, scored, probs, models, env.device, cfg.eval_throughput_batch, settings
        )
    return metrics


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        cfg, train, test, groups, teacher, student, features, classes = prepare(args)
    except RecipeError as exc:
        if int(os.environ.get("RANK", 0)) == 0:
            print(f"train.py: error: {exc}", file=sys.stderr)
        return 2
    env = Dist(args.cpu)
    out = (args.output_dir or HERE / "run").resolve()
    if env.main:
        out.mkdir(parents=True, exist_ok=True)
    env.barrier()
    run = Run(
        cfg,
        env,
        train,
        test,
        groups,
        features,
        classes,
        out,
        resume=not args.no_resume,
        plan=recorded_plan(args.config),
    )
    t_params, s_params = evidence.size_of(teacher)["params"], evidence.size_of(student)["params"]
    log(
        env,
        f"world {env.world} ({env.backend}, {env.device.type}); teacher {t_params:,} params, "
        f"student {s_params:,}; losses from {LOSSES_FROM}",
        {
            "event": "start",
            "world": env.world,
            "backend": env.backend,
            "teacher_params": t_params,
            "student_params": s_params,
        },
        out,
    )
    try:
        models, phases = train_all(run, teacher, student)
    except RecipeError as exc:  # the feature method on models that return no features
        if env.main:
            print(f"train.py: error: {exc}", file=sys.stderr)
        env.close()
        return 2
    m = report(run, models, phases)
    scratch = f"; scratch {m['baseline']['accuracy']:.4f}" if m["baseline"] else ""
    log(
        env,
        f"done: student accuracy {m['student']['accuracy']:.4f} ECE {m['student']['ece']:.4f}; "
        f"teacher {m['teacher']['accuracy']:.4f}{scratch}; wrote {out}",
    )
    env.barrier()
    env.close()
    return 0


if __name__ == "__main__":
    code = main()
    # Leave without interpreter finalisation: gloo's worker threads can still hold tensors then, and tearing them
    # down aborts the process (SIGABRT, "terminate called without an active exception"; pytorch PR #179291) after a
    # run that finished and wrote everything. Every file was written atomically and the process group destroyed.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
