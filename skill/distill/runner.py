"""run_quick_distill: teacher, from-scratch student and distilled student with paired seeds, then a report."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from skill.diagnose import diagnose_failure
from skill.distill import nets
from skill.distill.artifacts import write_artifacts
from skill.distill.config import DistillConfig
from skill.distill.data import Dataset, load_dataset
from skill.distill.evaluate import latency, logits_of, model_metrics
from skill.distill.losses import kd_loss
from skill.distill.report import Artifacts, CascadePoint, DistillReport, SeedSummary, Settings, Trial, WallTime
from skill.distill.budget import check_run_size
from skill.distill.teacher import load_logits, load_teacher_module
from skill.distill.train import Clock, Recipe, Result, Stopped, Teacher, accuracy_of, train
from skill.errors import InputError
from skill.gates import check_quality_gates
from skill.metrics import distillation_score
from skill.models import DiagnoseFailureRequest, QualityGatesRequest, RecommendMethodRequest
from skill.rules import get_rules

ProgressFn = Callable[[float, float, str], None]


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


class _Progress:
    """Counts epochs against an estimate so callers can show a bar; the message says phase, epoch, loss, val acc."""

    def __init__(self, fn: ProgressFn | None, total: float) -> None:
        self.fn, self.total, self.done = fn, total, 0.0

    def say(self, message: str) -> None:
        if self.fn:
            self.fn(min(self.done, self.total), self.total, message)

    def epoch_hook(self, phase: str, epochs: int) -> Callable[[int, float, float], None]:
        def hook(epoch: int, loss: float, val_acc: float) -> None:
            self.done += 1
            self.say(f"{phase}: epoch {epoch}/{epochs} loss {loss:.4f} val_acc {val_acc:.4f}")

        return hook


def _resolve_method(cfg: DistillConfig, compression: float, arch: str) -> tuple[str, str]:
    """The method and why: 'auto' asks recommend_method with what this run knows about itself."""
    if cfg.method != "auto":
        # only a method the caller named is "fixed"; the default is not a choice anyone made
        return cfg.method, "fixed by the caller" if "method" in cfg.model_fields_set else "the default method (method auto asks kd_recommend_method)"
    from skill.recommend import recommend_method

    # In a quick distill teacher and student solve the very same task (similarity 1) with the same family of net.
    answer = recommend_method(RecommendMethodRequest(task_type="classification", task_similarity=1.0, compression_ratio=max(compression, 1.0),
                                                     same_architecture_family=True))
    warnings = "; ".join(w.id for w in answer.warnings)
    return answer.method.id, f"recommend_method: {answer.method.reason}" + (f" (warnings: {warnings})" if warnings else "")


def temperature_was_tuned(cfg: DistillConfig, trials: list[Trial]) -> bool:
    """Tuned only when T was left open AND at least two settings actually trained: a run the time budget cut
    before its first trial tuned nothing, whatever the grid said."""
    return cfg.temperature is None and len({(t.temperature, t.kd_loss_weight) for t in trials}) > 1


def _recipe(method: str, cfg: DistillConfig, T: float, w: float) -> Recipe:
    hp = get_rules().method["methods"]
    return Recipe(
        method="response" if method == "cascade" else method, temperature=T, kd_loss_weight=w, feature_loss=cfg.feature_loss,
        relation_loss=cfg.relation_loss, augment=cfg.augment, hint_weight=float(hp["feature"]["hyperparameters"]["hint_loss_weight"]),
        attention_weight=float(hp["feature"]["hyperparameters"]["attention_loss_weight"]),
        response_loss=cfg.response_loss, dkd_alpha=float(hp["response"]["hyperparameters"]["dkd_alpha"]),
        dkd_beta=float(hp["response"]["hyperparameters"]["dkd_beta"]),
    )


def _train_teachers(cfg: DistillConfig, data: Dataset, arch: str, clock: Clock, progress: _Progress) -> tuple[list[torch.nn.Module], list[float]]:
    count = cfg.num_teachers if cfg.topology == "ensemble" else 1
    X, y = _t(data.X_train), _t(data.y_train)
    Xv, yv = _t(data.X_val), _t(data.y_val)
    teachers, accs = [], []
    for i in range(count):
        torch.manual_seed(cfg.seed + 1000 + i)
        model = nets.build(arch, X.shape[1], cfg.teacher_hidden, data.num_classes, data.image_side)
        result = train(model, X, y, torch.ones(len(y), dtype=torch.bool), Xv, yv, recipe=Recipe(), teacher=None, epochs=cfg.teacher_epochs,
                       batch_size=cfg.batch_size, lr=cfg.learning_rate, patience=cfg.patience, seed=cfg.seed + 1000 + i, clock=clock,
                       on_epoch=progress.epoch_hook(f"teacher {i + 1}/{count}", cfg.teacher_epochs))
        if result.stopped and result.val_accuracy < 0:
            raise Stopped(result.stopped)
        teachers.append(result.model)
        accs.append(result.val_accuracy)
        if result.stopped:
            raise Stopped(result.stopped)
    return teachers, accs


class _Ensemble(torch.nn.Module):
    """Weighted mean of teacher logits; features of the best-weighted teacher (for hint and relation losses)."""

    def __init__(self, members: list[torch.nn.Module], weights: list[float]) -> None:
        super().__init__()
        self.members = torch.nn.ModuleList(members)
        total = sum(weights)
        self.weights = [w / total for w in weights]
        self.lead = int(np.argmax(self.weights))

    def forward(self, x: torch.Tensor):  # type: ignore[no-untyped-def]
        outs = [m(x) for m in self.members]
        logits = sum(w * o[0] for w, o in zip(self.weights, outs))
        return logits, outs[self.lead][1], outs[self.lead][2]


def _mutual(cfg: DistillConfig, data: Dataset, arch: str, hidden: list[int], seed: int, T: float, w: float, clock: Clock,
            progress: _Progress) -> Result:
    """Deep mutual learning (Zhang et al. 2018): peers train together, each distilling from the others' mean."""
    X, y, Xv, yv = _t(data.X_train), _t(data.y_train), _t(data.X_val), _t(data.y_val)
    peers = []
    for i in range(cfg.num_peers):
        torch.manual_seed(seed + i * 7919)
        peers.append(nets.build(arch, X.shape[1], hidden, data.num_classes, data.image_side))
    optimizers = [torch.optim.Adam(p.parameters(), lr=cfg.learning_rate) for p in peers]
    generator = torch.Generator().manual_seed(seed)
    best, best_acc, epochs_run, stopped = peers[0].state_dict(), -1.0, 0, None
    hook = progress.epoch_hook("online peers", cfg.epochs)
    try:
        for epoch in range(cfg.epochs):
            for p in peers:
                p.train()
            order = torch.randperm(len(X), generator=generator)
            for start in range(0, len(order), cfg.batch_size):
                clock.check()
                idx = order[start : start + cfg.batch_size]
                logits = [p(X[idx])[0] for p in peers]
                for i, (opt, own) in enumerate(zip(optimizers, logits)):
                    others = torch.stack([l.detach() for j, l in enumerate(logits) if j != i]).mean(0)
                    loss = (1 - w) * F.cross_entropy(own, y[idx]) + w * kd_loss(own, F.softmax(others / T, dim=1), T)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
            epochs_run = epoch + 1
            accs = [accuracy_of(p, Xv, yv) for p in peers]
            hook(epoch + 1, loss.item(), max(accs))
            if max(accs) > best_acc:
                best_acc = max(accs)
                best = {k: v.clone() for k, v in peers[int(np.argmax(accs))].state_dict().items()}
    except Stopped as exc:
        stopped = exc.reason
    peers[0].load_state_dict(best)
    peers[0].eval()
    return Result(model=peers[0], val_accuracy=best_acc, epochs_run=epochs_run, stopped=stopped)


def run_quick_distill(cfg: DistillConfig, progress: ProgressFn | None = None, stop: Callable[[], bool] | None = None) -> DistillReport:
    """The whole run within cfg.time_budget_s; stops cleanly (complete=False) on the budget or a cancel."""
    t_start = time.monotonic()
    clock = Clock(deadline=t_start + cfg.time_budget_s, stop=stop or (lambda: False))
    wall = WallTime()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    prog = _Progress(progress, 1.0)
    prog.say("loading data")

    t0 = time.monotonic()
    data = load_dataset(cfg.dataset, label_column=cfg.label_column, test_fraction=cfg.test_fraction, val_fraction=cfg.val_fraction,
                        labeled_fraction=cfg.labeled_fraction, seed=cfg.seed)
    wall.data = time.monotonic() - t0
    if clock.stop():  # a cancel during the imports and the data load takes effect here
        raise Stopped("cancelled")
    arch = cfg.arch
    if arch == "auto":
        arch = "cnn" if (cfg.method == "feature" and cfg.feature_loss == "attention" and data.image_side) else "mlp"
    if arch == "cnn" and data.image_side is None:
        raise InputError("arch", f"cnn needs square image inputs; this dataset has {data.X_train.shape[1]} features")
    if cfg.feature_loss == "attention" and cfg.method == "feature" and arch != "cnn":
        raise InputError("feature_loss", "attention transfer needs convolutional nets: set arch to cnn (square image inputs)")
    check_run_size(cfg, arch, data)  # every parameter and the work per batch, against the time budget (issue 11)

    response_hp = get_rules().method["methods"]["response"]["hyperparameters"]
    default_weight = cfg.kd_loss_weight if cfg.kd_loss_weight is not None else float(response_hp["kd_loss_weight"])
    trials_grid = [(cfg.temperature, default_weight)] if cfg.temperature is not None else [(t, w) for t in cfg.temperature_grid for w in ([cfg.kd_loss_weight] if cfg.kd_loss_weight is not None else cfg.weight_grid)]
    n_teachers = cfg.num_teachers if cfg.topology == "ensemble" else 1
    student_phases = (1 + (cfg.generations if cfg.topology == "self" else 1 if cfg.topology == "online" else len(trials_grid))) * cfg.seeds
    prog.total = float((cfg.teacher_epochs * n_teachers if cfg.teacher == "train" else 0) + cfg.epochs * student_phases)

    X_test_t = _t(data.X_test)
    # ---- teacher ------------------------------------------------------------------------
    t0 = time.monotonic()
    teacher_module: torch.nn.Module | None = None
    cached: dict[str, np.ndarray] = {}
    teacher_hidden: list[int] | None = cfg.teacher_hidden
    stop_reason = "finished"
    try:
        if cfg.teacher == "train":
            members, member_acc = _train_teachers(cfg, data, arch, clock, prog)
            if cfg.topology == "ensemble":
                teacher_module = _Ensemble(members, list(cfg.ensemble_weights or member_acc))
            else:
                teacher_module = members[0]
        else:
            path = Path(cfg.teacher)
            if cfg.topology in ("ensemble",):
                raise InputError("topology", "ensemble trains its teachers here; use teacher 'train' or topology teacher_student")
            teacher_hidden = None
            if path.suffix == ".npz":
                n_total = len(data.train_index) + len(data.val_index) + len(data.unlabeled_from_train_index)
                cached = load_logits(path, n_total, len(data.X_test), data.num_classes)
                if cfg.method in ("feature", "relation") or cfg.augment != "none" or cfg.topology == "self":
                    raise InputError("teacher", "precomputed logits support method response or cascade without augmentation; feature, relation and augmented runs need a teacher module")
            else:
                teacher_module = load_teacher_module(path, arch, cfg.teacher_hidden, data.X_train.shape[1], data.num_classes, data.image_side)
    except Stopped as exc:
        stop_reason = exc.reason
    wall.teacher = time.monotonic() - t0
    if teacher_module is None and not cached:
        if stop_reason == "cancelled":
            raise Stopped("cancelled")
        raise InputError("time_budget_s", f"the time budget ran out before the teacher finished; raise time_budget_s (now {cfg.time_budget_s:g} s)")

    if cached:
        tl = cached["logits_train"]
        cached = {**cached, "logits_train_rows": tl[data.train_index], "logits_val": tl[data.val_index],
                  "logits_unl": np.concatenate([tl[data.unlabeled_from_train_index], cached.get("logits_unlabeled", np.zeros((0, data.num_classes), np.float32))])}
        if len(cached["logits_unl"]) != len(data.X_unlabeled):
            raise InputError("teacher", f"logits_unlabeled must have {len(data.X_unlabeled) - len(data.unlabeled_from_train_index)} rows aligned with X_unlabeled")
        teacher_test_logits = cached["logits_test"]
        teacher_params = 0
        teacher_size = 0
    else:
        teacher_module.eval()  # type: ignore[union-attr]
        teacher_test_logits = logits_of(teacher_module, X_test_t).numpy()  # type: ignore[arg-type]
        teacher_params = nets.count_params(teacher_module)  # type: ignore[arg-type]
        teacher_size = nets.size_bytes(teacher_module)  # type: ignore[arg-type]
    teacher_probs = F.softmax(_t(teacher_test_logits), 1).numpy()
    teacher_timing = latency(teacher_module, X_test_t) if teacher_module is not None else (0.0, 0.0)
    teacher_metrics = model_metrics(teacher_probs, data.y_test, data.num_classes, teacher_params, teacher_size, teacher_timing)

    # ---- student architecture -------------------------------------------------------------
    if cfg.student_hidden:
        hidden = list(cfg.student_hidden)
    elif teacher_params:
        hidden = nets.student_hidden_for(arch, data.X_train.shape[1], teacher_params, cfg.target_compression, data.num_classes, data.image_side, depth=1 if arch == "mlp" else 2)
    else:
        raise InputError("student_hidden", "the teacher's size is unknown (precomputed logits); give student_hidden")
    probe = nets.build(arch, data.X_train.shape[1], hidden, data.num_classes, data.image_side)
    student_params = nets.count_params(probe)
    compression = teacher_params / student_params if teacher_params else None
    method, method_reason = _resolve_method(cfg, compression or cfg.target_compression, arch)

    # ---- transfer set: labelled rows plus unlabelled rows the teacher labels ----------------
    X_kd = np.concatenate([data.X_train, data.X_unlabeled]) if len(data.X_unlabeled) else data.X_train
    y_kd = np.concatenate([data.y_train, np.zeros(len(data.X_unlabeled), np.int64)]) if len(data.X_unlabeled) else data.y_train
    has_label = torch.zeros(len(X_kd), dtype=torch.bool)
    has_label[: len(data.X_train)] = True
    Xk, yk, Xv, yv = _t(X_kd), _t(y_kd), _t(data.X_val), _t(data.y_val)
    # teacher logits computed once when the teacher is fixed and inputs are not augmented
    fixed_logits = None
    if cfg.augment == "none" and method in ("response", "cascade"):
        fixed_logits = _t(np.concatenate([cached["logits_train_rows"], cached["logits_unl"]])) if cached else logits_of(teacher_module, Xk)  # type: ignore[arg-type]
    signal = Teacher(module=teacher_module, cached_logits=fixed_logits)

    trials: list[Trial] = []
    outcomes: list[tuple[int, Result | None, Result | None]] = []
    for s in range(cfg.seeds):
        seed = cfg.seed + s
        scratch = distilled = None
        try:
            t0 = time.monotonic()
            torch.manual_seed(seed)
            scratch = train(nets.build(arch, Xk.shape[1], hidden, data.num_classes, data.image_side), Xk, yk, has_label, Xv, yv,
                            recipe=Recipe(), teacher=None, epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.learning_rate,
                            patience=cfg.patience, seed=seed, clock=clock, on_epoch=prog.epoch_hook(f"scratch (seed {seed})", cfg.epochs))
            wall.scratch += time.monotonic() - t0
            if scratch.stopped:
                raise Stopped(scratch.stopped)
            t0 = time.monotonic()
            if cfg.topology == "online":
                T, w = trials_grid[0]
                distilled = _mutual(cfg, data, arch, hidden, seed, T, w, clock, prog)
                trials.append(Trial(temperature=T, kd_loss_weight=w, val_accuracy=distilled.val_accuracy, epochs=distilled.epochs_run))
            elif cfg.topology == "self":
                T, w = trials_grid[0] if cfg.temperature is not None else (float(response_hp["default_temperature"]), default_weight)
                previous = scratch.model
                for g in range(cfg.generations):
                    torch.manual_seed(seed)
                    distilled = train(nets.build(arch, Xk.shape[1], hidden, data.num_classes, data.image_side), Xk, yk, has_label, Xv, yv,
                                      recipe=_recipe("response", cfg, T, w), teacher=Teacher(module=previous), epochs=cfg.epochs,
                                      batch_size=cfg.batch_size, lr=cfg.learning_rate, patience=cfg.patience, seed=seed, clock=clock,
                                      on_epoch=prog.epoch_hook(f"born-again generation {g + 1}", cfg.epochs))
                    trials.append(Trial(temperature=T, kd_loss_weight=w, val_accuracy=distilled.val_accuracy, epochs=distilled.epochs_run))
                    previous = distilled.model
                    if distilled.stopped:
                        break
            else:
                for T, w in trials_grid:
                    torch.manual_seed(seed)  # same initial weights as scratch
                    result = train(nets.build(arch, Xk.shape[1], hidden, data.num_classes, data.image_side), Xk, yk, has_label, Xv, yv,
                                   recipe=_recipe(method, cfg, T, w), teacher=signal, epochs=cfg.epochs, batch_size=cfg.batch_size,
                                   lr=cfg.learning_rate, patience=cfg.patience, seed=seed, clock=clock,
                                   on_epoch=prog.epoch_hook(f"{method} T={T:g} w={w:g} (seed {seed})", cfg.epochs))
                    if result.val_accuracy >= 0:
                        trials.append(Trial(temperature=T, kd_loss_weight=w, val_accuracy=result.val_accuracy, epochs=result.epochs_run))
                        if distilled is None or result.val_accuracy > distilled.val_accuracy:
                            distilled = result
                    if result.stopped:
                        raise Stopped(result.stopped)
            wall.distill += time.monotonic() - t0
            if distilled is not None and distilled.stopped:
                raise Stopped(distilled.stopped)
        except Stopped as exc:
            stop_reason = exc.reason
            outcomes.append((seed, scratch, distilled))
            break
        outcomes.append((seed, scratch, distilled))

    # ---- evaluate ---------------------------------------------------------------------------
    t0 = time.monotonic()
    first_seed, scratch, distilled = outcomes[0] if outcomes else (cfg.seed, None, None)
    scratch_metrics = distilled_metrics = None
    distilled_probs = None
    if scratch is not None and scratch.val_accuracy >= 0:
        p = F.softmax(logits_of(scratch.model, X_test_t), 1).numpy()
        scratch_metrics = model_metrics(p, data.y_test, data.num_classes, student_params, nets.size_bytes(scratch.model), latency(scratch.model, X_test_t))
    if distilled is not None and distilled.val_accuracy >= 0:
        distilled_probs = F.softmax(logits_of(distilled.model, X_test_t), 1).numpy()
        distilled_metrics = model_metrics(distilled_probs, data.y_test, data.num_classes, student_params, nets.size_bytes(distilled.model),
                                          latency(distilled.model, X_test_t))
    gain = (distilled_metrics.accuracy - scratch_metrics.accuracy) * 100 if scratch_metrics and distilled_metrics else None
    score = None
    if distilled_metrics and teacher_params and teacher_metrics.accuracy > 0:
        score = distillation_score(cfg.alpha, student_params, teacher_params, distilled_metrics.accuracy, teacher_metrics.accuracy)[0]

    cascade = None
    if method == "cascade" and distilled_probs is not None:
        guidance = float(get_rules().method["methods"]["cascade"]["hyperparameters"]["confidence_threshold"])
        marked = cfg.cascade_threshold if cfg.cascade_threshold is not None else guidance
        conf, s_pred, t_pred = distilled_probs.max(1), distilled_probs.argmax(1), teacher_probs.argmax(1)
        thresholds = sorted({round(x, 2) for x in np.linspace(0.5, 0.99, 11)} | {marked})
        cascade = [
            CascadePoint(threshold=t, accuracy=float(np.mean(np.where(conf >= t, s_pred, t_pred) == data.y_test)),
                         share_to_teacher=float(np.mean(conf < t)), is_guidance_threshold=abs(t - marked) < 1e-9)
            for t in thresholds
        ]

    tuned = temperature_was_tuned(cfg, trials)
    seed_summary = _seed_summary(outcomes, X_test_t, data.y_test) if cfg.seeds > 1 else None
    diagnosis = gates = None
    if distilled_probs is not None:
        n = min(len(data.y_test), int(get_rules().failure_modes["raw_limits"]["max_samples"]))
        diagnosis = diagnose_failure(DiagnoseFailureRequest(
            labels=data.y_test[:n].tolist(), student_probs=distilled_probs[:n].tolist(), teacher_probs=teacher_probs[:n].tolist(),
            groups=data.groups_test[:n].tolist() if data.groups_test is not None else None, positive_class=cfg.positive_class))
        detected = set(diagnosis.detected)
        gates = check_quality_gates(QualityGatesRequest(
            alpha=cfg.alpha, alpha_reason="given to the quick distill", distillation_score=score, stratified_validation=True,
            per_class_thresholds_met="accuracy_mirage" not in detected, temperature=trials[-1].temperature if trials else None,
            temperature_tuned=tuned, calibration_validated="temperature_blindness" not in detected,
            compression_ratio=compression, cascade_evaluated=method == "cascade", accuracy=distilled_metrics.accuracy if distilled_metrics else None))
    wall.evaluate = time.monotonic() - t0

    best_trial = max(trials, key=lambda t: t.val_accuracy) if trials else None
    settings = Settings(
        seed=cfg.seed, method=method, method_reason=method_reason, topology=cfg.topology, arch=arch, teacher_hidden=teacher_hidden, student_hidden=hidden,
        temperature=best_trial.temperature if best_trial else trials_grid[0][0], kd_loss_weight=best_trial.kd_loss_weight if best_trial else trials_grid[0][1],
        temperature_tuned=tuned, epochs=cfg.epochs,
        epochs_run_distilled=distilled.epochs_run if distilled else 0, epochs_run_scratch=scratch.epochs_run if scratch else 0,
        augment=cfg.augment, transfer_set_size=len(data.X_unlabeled), stop_reason=stop_reason, threads=torch.get_num_threads(),
    )
    report = DistillReport(
        dataset=data.name, num_classes=data.num_classes, n_train=len(data.X_train), n_val=len(data.X_val), n_test=len(data.X_test),
        teacher=teacher_metrics, scratch=scratch_metrics, distilled=distilled_metrics, gain_points=gain,
        teacher_share_kept=distilled_metrics.accuracy / teacher_metrics.accuracy if distilled_metrics and teacher_metrics.accuracy else None,
        compression_ratio=compression, alpha=cfg.alpha, distillation_score=score, trials=trials, cascade=cascade, seed_summary=seed_summary,
        diagnosis=diagnosis, quality_gates=gates, settings=settings, wall_time_s=wall, artifacts=Artifacts(),
        complete=stop_reason == "finished" and distilled_metrics is not None, summary="",
    )
    report.summary = _summary(report)
    report.wall_time_s.total = time.monotonic() - t_start
    # a cancelled run writes nothing: the caller has gone and must not find half a run on disk
    if cfg.save_artifacts and stop_reason != "cancelled" and distilled is not None and distilled.val_accuracy >= 0:
        report.artifacts = write_artifacts(report, distilled.model, cfg.output_dir)
    prog.done = prog.total
    prog.say("done: " + report.summary)
    return report


def _seed_summary(outcomes: list[tuple[int, Result | None, Result | None]], X_test: torch.Tensor, y_test: np.ndarray) -> SeedSummary | None:
    pairs = []
    for seed, scratch, distilled in outcomes:
        if scratch is None or distilled is None or scratch.val_accuracy < 0 or distilled.val_accuracy < 0:
            continue
        s = float((logits_of(scratch.model, X_test).argmax(1).numpy() == y_test).mean())
        d = float((logits_of(distilled.model, X_test).argmax(1).numpy() == y_test).mean())
        pairs.append((seed, s, d))
    if len(pairs) < 2:
        return None
    gains = [(d - s) * 100 for _, s, d in pairs]
    mean, std = statistics.mean(gains), statistics.stdev(gains)
    beats = mean > std and mean > 0
    if beats:
        statement = f"Distillation gains {mean:+.2f} +- {std:.2f} points over {len(pairs)} paired seeds: larger than the noise."
    elif mean < -std:
        statement = f"Distillation loses {mean:+.2f} +- {std:.2f} points over {len(pairs)} paired seeds: a real loss, larger than the noise; check the teacher and T."
    else:
        statement = f"Distillation changes accuracy by {mean:+.2f} +- {std:.2f} points over {len(pairs)} paired seeds: within the noise, not a demonstrated gain."
    return SeedSummary(seeds=[p[0] for p in pairs], gains_points=gains, mean_gain_points=mean, std_gain_points=std,
                       distilled_accuracy_mean=statistics.mean(p[2] for p in pairs), scratch_accuracy_mean=statistics.mean(p[1] for p in pairs),
                       gain_beats_noise=beats, statement=statement)


def _summary(r: DistillReport) -> str:
    parts = [f"teacher {r.teacher.accuracy:.4f}"]
    if r.scratch:
        parts.append(f"scratch {r.scratch.accuracy:.4f}")
    if r.distilled:
        parts.append(f"distilled {r.distilled.accuracy:.4f} (ECE {r.distilled.ece:.3f})")
    if r.gain_points is not None:
        parts.append(f"gain {r.gain_points:+.2f} pts")
    if r.compression_ratio:
        parts.append(f"{r.compression_ratio:.1f}x smaller")
    if r.seed_summary:
        parts.append(r.seed_summary.statement)
    elif r.gain_points is not None:
        parts.append("single seed: run seeds >= 3 before calling a gain real")
    if not r.complete:
        parts.append(f"INCOMPLETE ({r.settings.stop_reason})")
    return "; ".join(parts)
