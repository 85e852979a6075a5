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
from kd_recipe.config import Config, parse_args, recorded_plan, settings  # noqa: E402
from kd_recipe.data import Batches, data_shape, import_object, length, load_data  # noqa: E402
from kd_recipe.distributed import Dist, log, shard_record  # noqa: E402
from kd_recipe.teacher import TeacherSignal, cache_teacher_logits, split_outputs  # noqa: E402
from kd_recipe.weights import (  # noqa: E402
    check_sizes,
    load_checkpoint,
    load_weights,
    probe_outputs,
    save_checkpoint,
    save_weights,
    size_of,
)
from kd_vendor import losses, nets  # noqa: E402

LOSSES_FROM = "kd_vendor/losses.py"


# ---- settings, models and the loss ------------------------------------------------------------
# The settings are one typed Config (kd_recipe/config.py): config.yaml, then the flags, read once at setup.


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
        state = load_checkpoint(ckpt, model, optimizer, scaler, env.device)  # weights, optimizer, scaler, progress
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


# ---- setup -------------------------------------------------------------------------------------


def prepare(args: argparse.Namespace) -> tuple[Config, Dataset, Dataset, Any, nn.Module, nn.Module, int, int]:
    """Everything that can fail on a bad setting, before any process group exists (so no rank hangs)."""
    cfg = settings(args)
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
    # a student bigger than its teacher distils nothing; each extra width of the capacity curve is built to check it
    check_sizes(
        teacher,
        student,
        cfg.student_model,
        cfg.train_student_sizes,
        lambda width: build_model("student", cfg, features, classes, scaled_hidden(cfg.student_hidden, width)),
    )
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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv, (__doc__ or "").split("\n\n")[0], HERE)
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
    t_params, s_params = size_of(teacher)["params"], size_of(student)["params"]
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
    m = evidence.report(cfg, env, out, test, groups, classes, run.plan, models, phases, LOSSES_FROM)
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
