"""run_quick_distill: a teacher, scratch students and distilled students with paired seeds, then an honest report."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch

from skill.distill import nets, stages
from skill.distill.artifacts import write_artifacts
from skill.distill.config import DistillConfig
from skill.distill.device import resolve_device
from skill.distill.report import Artifacts, CascadePoint, DistillReport, ModelMetrics, Settings, Trial
from skill.distill.stages import Context, Data, MethodChoice, Nets, Pair, Plan, ProgressFn, Teachers, Trials, probs_on
from skill.distill.targets import EnsembleTeacher
from skill.distill.threads import torch_threads
from skill.distill.train import Clock, Stopped
from skill.distill.verdict import advice, compare
from skill.errors import InputError
from skill.rules import get_rules


def run_quick_distill(
    cfg: DistillConfig, progress: ProgressFn | None = None, stop: Callable[[], bool] | None = None
) -> DistillReport:
    """The whole run within cfg.time_budget_s; stops cleanly (complete=False) on the budget or a cancel."""
    t_start = time.monotonic()
    device, device_reason = resolve_device(cfg.device)
    ctx = Context(
        cfg,
        Clock(deadline=t_start + cfg.time_budget_s, stop=stop or (lambda: False)),
        stages.Progress(progress),
        device,
        device_reason,
    )
    with torch_threads(
        torch.get_num_threads()
    ):  # the plan sets the run's threads; the caller's setting comes back after
        data = stages.load(ctx)
        nets_ = stages.architecture(ctx, data)
        choice = stages.method(ctx, data, nets_)
        plan = stages.plan(ctx, data, nets_, choice)
        try:
            teacher = stages.teachers(ctx, data, nets_, plan)
        except Stopped as exc:
            if exc.reason == "cancelled":
                raise
            raise InputError(
                "time_budget_s",
                "the time budget ran out before the teacher finished an epoch; raise time_budget_s (now "
                f"{cfg.time_budget_s:g} s)",
            ) from None
        trials = stages.students(ctx, data, nets_, choice, plan, teacher)
        report = evaluate(ctx, data, nets_, choice, plan, teacher, trials)
    report.wall_time_s.total = time.monotonic() - t_start
    # a cancelled run writes nothing: the caller has gone and must not find half a run on disk
    if cfg.save_artifacts and trials.stop_reason != "cancelled" and report.distilled is not None:
        save_artifacts(cfg, data, trials, report)
    ctx.progress.done = ctx.progress.total
    ctx.progress.say("done: " + report.summary)
    return report


# ---- evaluate + verdict ----------------------------------------------------------------------------------------------
def evaluate(
    ctx: Context, data: Data, nets_: Nets, choice: MethodChoice, plan: Plan, teacher: Teachers, trials: Trials
) -> DistillReport:
    cfg, d, t0 = ctx.cfg, data.dataset, time.monotonic()
    X_test, y = data.tensors["X_test"], d.y_test
    seeds = [cfg.seed + s for s in range(trials.shape.seeds)]
    pairs = [] if trials.stop_reason == "cancelled" else trials.pairs(seeds)
    saved = pairs[0] if pairs and pairs[0].seed == cfg.seed else None
    scratch_m = distilled_m = None
    distilled_probs = None
    if saved:
        scratch_probs, distilled_probs = (
            probs_on(saved.scratch.result.model, X_test),
            probs_on(saved.learner.result.model, X_test),
        )
        scratch_m = stages.metrics_of(data, nets_, scratch_probs, saved.scratch.result.model, nets_.student_params)
        distilled_m = stages.metrics_of(data, nets_, distilled_probs, saved.learner.result.model, nets_.student_params)
    teacher_probs, teacher_m, reference, ref_params = _reference(ctx, data, nets_, teacher, trials, saved)
    comparison = None
    if pairs:
        sc = np.stack([(probs_on(p.scratch.result.model, X_test).argmax(1) == y) for p in pairs]).astype(float)
        dc = np.stack([(probs_on(p.learner.result.model, X_test).argmax(1) == y) for p in pairs]).astype(float)
        has_teacher = cfg.topology in ("teacher_student", "ensemble")
        comparison = compare(
            [p.seed for p in pairs],
            sc,
            dc,
            (teacher_probs.argmax(1) == y).astype(float) if has_teacher else None,
            teacher_converged=teacher.stopped_by == "early_stopping",
            teacher_given=cfg.teacher != "train",
            cut_short=trials.cut_short.sentence() if trials.cut_short else None,
        )
    rows = stages.trial_rows(trials, seeds, stages.tie_rows(ctx), len(d.X_val))
    ties = _ties(rows, len(d.X_val))
    trained: dict[str, int] = {}
    for run in trials.runs:  # learners of every topology count as the distilled side
        side = "scratch" if run.member.role == "scratch" else "distilled"
        trained[side] = max(trained.get(side, 0), run.result.epochs_run)
    words, keep = advice(comparison, trials.stop_reason, ties, trained)
    gain = (distilled_m.accuracy - scratch_m.accuracy) * 100 if scratch_m and distilled_m else None
    score = None
    if distilled_m and ref_params and teacher_m.accuracy > 0:
        from skill.metrics import distillation_score

        score = distillation_score(
            cfg.alpha, nets_.student_params, ref_params, distilled_m.accuracy, teacher_m.accuracy
        )[0]
    compression = ref_params / nets_.student_params if ref_params else None
    warnings = list(data.warnings) + list(plan.warnings) + list(teacher.warnings)
    if trials.replanned:
        warnings.append("re-planned with the time left: " + "; ".join(trials.replanned))
    plan_report = plan.report.model_copy(
        update={
            "replanned": list(trials.replanned),
            "seeds": trials.shape.seeds,
            "trials_per_side": trials.shape.trials,
            "epochs": trials.shape.epochs,
        }
    )
    report = DistillReport(
        dataset=d.name,
        num_classes=d.num_classes,
        n_train=len(d.X_train),
        n_val=len(d.X_val),
        n_test=len(d.X_test),
        teacher=teacher_m,
        scratch=scratch_m,
        distilled=distilled_m,
        gain_points=gain,
        teacher_share_kept=distilled_m.accuracy / teacher_m.accuracy if distilled_m and teacher_m.accuracy else None,
        compression_ratio=compression,
        alpha=cfg.alpha,
        distillation_score=score,
        trials=rows,
        cascade=_cascade(cfg, choice, d.y_test, distilled_probs, teacher_probs),
        comparison=comparison,
        verdict=words,
        warnings=warnings,
        settings=_settings(ctx, data, nets_, choice, plan, teacher, trials, saved, reference, rows),
        wall_time_s=ctx.wall,
        artifacts=Artifacts(saved_student=keep if saved else None),
        complete=trials.stop_reason == "finished" and distilled_m is not None,
        summary="",
        plan=plan_report,
    )
    _diagnose(cfg, data, report, distilled_probs, teacher_probs, score, compression, choice)
    report.summary = _summary(report)
    ctx.wall.evaluate = time.monotonic() - t0
    return report


def _ties(rows: list[Trial], n_val: int) -> list[str]:
    """One line per side naming the seeds whose selection was decided by tie_rows validation rows or fewer."""
    tie_rows = int(get_rules().runner["selection"]["tie_rows"])
    sides: dict[str, list[int]] = {}
    for r in rows:
        if r.selected and r.tied:
            sides.setdefault(r.role, []).append(r.seed)
    return [
        f"the {side} trials tied on validation for seed(s) {', '.join(map(str, seeds))} (the best within {tie_rows} "
        f"of {n_val} rows of "
        "the next): which of them was selected is noise"
        for side, seeds in sides.items()
    ]


def _reference(
    ctx: Context, data: Data, nets_: Nets, teacher: Teachers, trials: Trials, saved: Pair | None
) -> tuple[np.ndarray, ModelMetrics, str, int]:
    """What the 'teacher' slot holds: the teacher; for online the peers' average; for self generation 0."""
    cfg, X_test = ctx.cfg, data.tensors["X_test"]
    module: torch.nn.Module | None
    if cfg.topology == "online":
        peers = [
            r.result.model
            for r in trials.runs
            if r.member.role == "peer" and r.seed == cfg.seed and r.result.val_accuracy >= 0
        ]
        module = EnsembleTeacher(peers, [1.0] * len(peers)) if peers else None
        what = (
            f"online has no teacher: the 'teacher' is the average of the {cfg.num_peers} peers' probabilities (seed "
            f"{cfg.seed}), {cfg.num_peers}x one student"
        )
    elif cfg.topology == "self":
        module = saved.scratch.result.model if saved else None
        what = (
            "self has no teacher: the 'teacher' is generation 0 (the selected scratch student), the same size "
            "(compression 1x)"
        )
    elif nets_.cached_logits:
        probs = torch.softmax(torch.from_numpy(nets_.cached_logits["test"]), 1).numpy()
        return (
            probs,
            stages.metrics_of(data, nets_, probs, None, 0),
            "the teacher's precomputed logits (size unknown)",
            0,
        )
    else:
        module = teacher.module
        what = (
            f"the ensemble of {cfg.num_teachers} teachers (their probabilities averaged)"
            if cfg.topology == "ensemble"
            else "the teacher"
        )
    if module is None:
        probs = np.full((len(X_test), data.dataset.num_classes), 1.0 / data.dataset.num_classes)
        return probs, stages.metrics_of(data, nets_, probs, None, 0), what + " (not trained: the run stopped)", 0
    probs = probs_on(module, nets_.to_teacher(X_test) if module is nets_.external else X_test)
    params = nets.count_params(module)
    return probs, stages.metrics_of(data, nets_, probs, module, params), what, params


def temperature_was_tuned(cfg: DistillConfig, trials: list[Trial]) -> bool:
    """Tuned only when T was left open and at least two temperatures trained an epoch: a run the budget cut before
    its trials tuned nothing, whatever the grid planned; self-distillation keeps one T across generations."""
    trained = {
        t.temperature
        for t in trials
        if t.role != "scratch" and t.temperature is not None and t.val_accuracy >= 0 and t.epochs > 0
    }
    return cfg.temperature is None and cfg.topology != "self" and len(trained) > 1


def _settings(
    ctx: Context,
    data: Data,
    nets_: Nets,
    choice: MethodChoice,
    plan: Plan,
    teacher: Teachers,
    trials: Trials,
    saved: Pair | None,
    reference: str,
    rows: list[Trial],
) -> Settings:
    cfg = ctx.cfg
    scratch, learner = (saved.scratch, saved.learner) if saved else (None, None)
    given = cfg.teacher != "train"
    return Settings(
        seed=cfg.seed,
        method=choice.name,
        method_reason=choice.reason,
        topology=cfg.topology,
        reference=reference,
        arch=nets_.arch,
        input_layout=cfg.input_layout,
        standardize=data.scaler.kind,
        teacher_hidden=nets_.teacher_hidden,
        student_hidden=nets_.student_hidden,
        temperature=learner.member.temperature if learner else None,
        kd_loss_weight=learner.member.kd_weight if learner else None,
        learning_rate=learner.member.lr if learner else cfg.learning_rate,
        scratch_learning_rate=scratch.member.lr if scratch else None,
        temperature_tuned=temperature_was_tuned(cfg, rows),
        trials_per_side=trials.shape.trials,
        epochs=trials.shape.epochs,
        epochs_run_distilled=learner.result.epochs_run if learner else 0,
        epochs_run_scratch=scratch.result.epochs_run if scratch else 0,
        steps_distilled=learner.result.steps if learner else 0,
        steps_scratch=scratch.result.steps if scratch else 0,
        teacher_epochs=None if given or not plan.teacher_epochs else plan.teacher_epochs,
        augment=cfg.augment,
        transfer_set_size=len(data.dataset.X_unlabeled),
        stop_reason=trials.stop_reason,
        threads=plan.threads,
        threads_reason=plan.threads_reason,
        time_estimate_s=plan.estimate_s,
        teacher_source=nets_.teacher_source
        if cfg.topology in ("teacher_student", "ensemble")
        else f"none: {cfg.topology} trains no teacher",
        teacher_epochs_run=teacher.epochs_run,
        teacher_stopped_by=teacher.stopped_by,
        student_size_reason=nets_.student_reason,
        scratch_search=list(trials.scratch_search),
        distilled_search=[[T, w] for T, w in trials.distilled_search]
        if cfg.topology in ("teacher_student", "ensemble")
        else [],
        distilled_lr_rule=(
            "each seed's distilled trials train at the learning rate its scratch search selected (the common "
            "protocol: the "
            "baseline's tuned optimiser settings are reused, then T and the loss weight are tuned), so both sides "
            "search the "
            "same learning rates and are each the best of the same number of trials"
        ),
        device=f"{ctx.device.type} ({ctx.device_reason})",
    )


def _cascade(
    cfg: DistillConfig,
    choice: MethodChoice,
    y: np.ndarray,
    distilled_probs: np.ndarray | None,
    teacher_probs: np.ndarray,
) -> list[CascadePoint] | None:
    if choice.name != "cascade" or distilled_probs is None:
        return None
    guidance = float(get_rules().method["methods"]["cascade"]["hyperparameters"]["confidence_threshold"])
    marked = cfg.cascade_threshold if cfg.cascade_threshold is not None else guidance
    conf, s_pred, t_pred = distilled_probs.max(1), distilled_probs.argmax(1), teacher_probs.argmax(1)
    return [
        CascadePoint(
            threshold=t,
            accuracy=float(np.mean(np.where(conf >= t, s_pred, t_pred) == y)),
            share_to_teacher=float(np.mean(conf < t)),
            is_guidance_threshold=abs(t - marked) < 1e-9,
        )
        for t in sorted({round(x, 2) for x in np.linspace(0.5, 0.99, 11)} | {marked})
    ]


def _diagnose(
    cfg: DistillConfig,
    data: Data,
    report: DistillReport,
    distilled_probs: np.ndarray | None,
    teacher_probs: np.ndarray,
    score: float | None,
    compression: float | None,
    choice: MethodChoice,
) -> None:
    """kd_diagnose_failure on the saved student's predictions, then the quality gates with that student's real T."""
    if distilled_probs is None:
        return
    from skill.diagnose import diagnose_failure
    from skill.gates import check_quality_gates
    from skill.models import DiagnoseFailureRequest, QualityGatesRequest

    d = data.dataset
    n = min(len(d.y_test), int(get_rules().failure_modes["raw_limits"]["max_samples"]))
    report.diagnosis = diagnose_failure(
        DiagnoseFailureRequest(
            labels=d.y_test[:n].tolist(),
            student_probs=distilled_probs[:n].tolist(),
            teacher_probs=teacher_probs[:n].tolist(),
            groups=d.groups_test[:n].tolist() if d.groups_test is not None else None,
            positive_class=cfg.positive_class,
        )
    )
    detected = set(report.diagnosis.detected)
    report.quality_gates = check_quality_gates(
        QualityGatesRequest(
            # a negative DS (student above its reference) is reported, but the gate only takes DS in its defined range
            alpha=cfg.alpha,
            alpha_reason="given to the quick distill",
            distillation_score=score if score is not None and score >= 0 else None,
            stratified_validation=True,
            per_class_thresholds_met="accuracy_mirage" not in detected,
            temperature=report.settings.temperature,
            temperature_tuned=report.settings.temperature_tuned,
            calibration_validated="temperature_blindness" not in detected,
            compression_ratio=compression if compression and compression >= 1 else None,
            cascade_evaluated=choice.name == "cascade",
            accuracy=report.distilled.accuracy if report.distilled else None,
        )
    )


def _summary(r: DistillReport) -> str:
    """The headline: with several paired seeds the students' accuracies are their means over the seeds, the numbers
    the interval is about (the saved seed's own values beside them), so the headline and the gain agree."""
    parts = [f"teacher {r.teacher.accuracy:.4f}"]
    c = r.comparison
    # the comparison when there are several paired seeds to report means of, else None
    several = c if c is not None and len(c.pairs) > 1 and c.scratch_mean_accuracy is not None else None
    seed = r.settings.seed
    if r.scratch:
        parts.append(
            f"scratch {several.scratch_mean_accuracy:.4f} (mean of {len(several.pairs)} seeds; seed {seed}: "
            f"{r.scratch.accuracy:.4f})"
            if several
            else f"scratch {r.scratch.accuracy:.4f}"
        )
    if r.distilled:
        parts.append(
            f"distilled {several.distilled_mean_accuracy:.4f} (mean of {len(several.pairs)} seeds; seed {seed}: "
            f"{r.distilled.accuracy:.4f}, "
            f"ECE {r.distilled.ece:.3f})"
            if several
            else f"distilled {r.distilled.accuracy:.4f} (ECE {r.distilled.ece:.3f})"
        )
    if r.compression_ratio:
        parts.append(f"{r.compression_ratio:.1f}x smaller")
    if r.comparison:
        parts.append(r.comparison.statement)
    parts.append(r.verdict)
    return "; ".join(parts + r.warnings)


# ---- artifacts -------------------------------------------------------------------------------------------------------
def save_artifacts(cfg: DistillConfig, data: Data, trials: Trials, report: DistillReport) -> None:
    """The student the verdict recommends, with the input scaling it was trained with."""
    keep = report.artifacts.saved_student or "distilled"
    pair = trials.pairs([cfg.seed])[0]
    model = (pair.scratch if keep == "scratch" else pair.learner).result.model
    scaler = {"mean": torch.from_numpy(data.scaler.mean), "std": torch.from_numpy(data.scaler.std)}
    report.artifacts = write_artifacts(report, model, cfg.output_dir, scaler=scaler, saved_student=keep)
