"""run_quick_distill: a teacher, scratch students and distilled students with paired seeds, then an honest report."""

from __future__ import annotations

import time
from typing import Callable

import numpy as np
import torch

from skill.distill import nets, stages
from skill.distill.artifacts import write_artifacts
from skill.distill.config import DistillConfig
from skill.distill.report import Artifacts, CascadePoint, DistillReport, ModelMetrics, Settings, Trial
from skill.distill.stages import ProgressFn, Run, probs_on, selected
from skill.distill.targets import EnsembleTeacher
from skill.distill.threads import torch_threads
from skill.distill.train import Clock, Stopped
from skill.distill.verdict import advice, compare, teacher_not_better
from skill.errors import InputError
from skill.rules import get_rules


def run_quick_distill(cfg: DistillConfig, progress: ProgressFn | None = None, stop: Callable[[], bool] | None = None) -> DistillReport:
    """The whole run within cfg.time_budget_s; stops cleanly (complete=False) on the budget or a cancel."""
    t_start = time.monotonic()
    run = Run(cfg=cfg, clock=Clock(deadline=t_start + cfg.time_budget_s, stop=stop or (lambda: False)), progress=stages.Progress(progress))
    with torch_threads(torch.get_num_threads()):  # the plan sets the run's threads; the caller's setting comes back after
        stages.load(run)
        stages.architecture(run)
        stages.method(run)
        stages.plan(run)
        try:
            stages.teachers(run)
            stages.students(run)
        except Stopped as exc:
            run.stop_reason = exc.reason
        if run.teacher is None and not run.cached_logits and cfg.topology in ("teacher_student", "ensemble"):
            if run.stop_reason == "cancelled":
                raise Stopped("cancelled")
            raise InputError("time_budget_s", f"the time budget ran out before the teacher finished; raise time_budget_s (now {cfg.time_budget_s:g} s)")
        report = evaluate(run)
    report.wall_time_s.total = time.monotonic() - t_start
    # a cancelled run writes nothing: the caller has gone and must not find half a run on disk
    if cfg.save_artifacts and run.stop_reason != "cancelled" and report.distilled is not None:
        save_artifacts(run, report)
    run.progress.done = run.progress.total
    run.progress.say("done: " + report.summary)
    return report


# ---- evaluate + verdict ------------------------------------------------------------------------------------------------
def evaluate(run: Run) -> DistillReport:
    cfg, d, t0 = run.cfg, run.data, time.monotonic()
    assert d is not None
    X_test, y = run.tensors["X_test"], d.y_test
    seeds = [cfg.seed + s for s in range(cfg.seeds)]
    pairs = [] if run.stop_reason == "cancelled" else _pairs(run, seeds)
    saved = pairs[0] if pairs and pairs[0][0] == cfg.seed else None
    scratch_m = distilled_m = None
    distilled_probs = None
    if saved:
        _, (sm, sr, _), (dm, dr, dg) = saved
        scratch_probs, distilled_probs = probs_on(sr.model, X_test), probs_on(dr.model, X_test)
        scratch_m = stages.metrics_of(run, scratch_probs, sr.model, run.student_params)
        distilled_m = stages.metrics_of(run, distilled_probs, dr.model, run.student_params)
    teacher_probs, teacher_m, reference, ref_params = _reference(run, saved)
    comparison = teacher_flag = None
    if pairs:
        sc = np.stack([(probs_on(p[1][1].model, X_test).argmax(1) == y) for p in pairs]).astype(float)
        dc = np.stack([(probs_on(p[2][1].model, X_test).argmax(1) == y) for p in pairs]).astype(float)
        comparison = compare([p[0] for p in pairs], sc, dc)
        if cfg.topology in ("teacher_student", "ensemble"):
            teacher_flag = teacher_not_better((teacher_probs.argmax(1) == y).astype(float), sc)
    words, keep = advice(comparison, teacher_flag, run.stop_reason)
    gain = (distilled_m.accuracy - scratch_m.accuracy) * 100 if scratch_m and distilled_m else None
    score = None
    if distilled_m and ref_params and teacher_m.accuracy > 0:
        from skill.metrics import distillation_score

        score = distillation_score(cfg.alpha, run.student_params, ref_params, distilled_m.accuracy, teacher_m.accuracy)[0]
    compression = ref_params / run.student_params if ref_params else None
    report = DistillReport(
        dataset=d.name, num_classes=d.num_classes, n_train=len(d.X_train), n_val=len(d.X_val), n_test=len(d.X_test),
        teacher=teacher_m, scratch=scratch_m, distilled=distilled_m, gain_points=gain,
        teacher_share_kept=distilled_m.accuracy / teacher_m.accuracy if distilled_m and teacher_m.accuracy else None,
        compression_ratio=compression, alpha=cfg.alpha, distillation_score=score, trials=stages.trial_rows(run),
        cascade=_cascade(run, distilled_probs, teacher_probs), comparison=comparison, verdict=words, warnings=run.warnings,
        settings=_settings(run, saved, reference), wall_time_s=run.wall, artifacts=Artifacts(saved_student=keep if saved else None),
        complete=run.stop_reason == "finished" and distilled_m is not None, summary="",
    )
    _diagnose(run, report, distilled_probs, teacher_probs, score, compression)
    report.summary = _summary(report)
    run.wall.evaluate = time.monotonic() - t0
    return report


def _pairs(run: Run, seeds: list[int]) -> list:  # type: ignore[type-arg]
    """(seed, selected scratch trial, selected distilled trial) for every seed where both finished an epoch."""
    out = []
    for seed in seeds:
        try:
            out.append((seed, selected(run, seed, ("scratch",)), selected(run, seed, run.learner_roles)))
        except LookupError:
            continue
    return out


def _reference(run: Run, saved) -> tuple[np.ndarray, ModelMetrics, str, int]:  # type: ignore[no-untyped-def]
    """What the 'teacher' slot holds: the teacher; for online the peers' average; for self generation 0."""
    cfg, X_test = run.cfg, run.tensors["X_test"]
    if cfg.topology == "online":
        peers = [r.model for m, r in zip(run.members, run.results) if m.role == "peer" and m.order_seed == cfg.seed and r.val_accuracy >= 0]
        module = EnsembleTeacher(peers, [1.0] * len(peers)) if peers else None
        what = f"online has no teacher: the 'teacher' is the average of the {cfg.num_peers} peers' probabilities (seed {cfg.seed}), {cfg.num_peers}x one student"
    elif cfg.topology == "self":
        module = saved[1][1].model if saved else None
        what = "self has no teacher: the 'teacher' is generation 0 (the selected scratch student), the same size (compression 1x)"
    elif run.cached_logits:
        probs = torch.softmax(torch.from_numpy(run.cached_logits["test"]), 1).numpy()
        return probs, stages.metrics_of(run, probs, None, 0), "the teacher's precomputed logits (size unknown)", 0
    else:
        module = run.teacher
        what = (f"the ensemble of {cfg.num_teachers} teachers (their probabilities averaged)" if cfg.topology == "ensemble"
                else "the teacher")
    if module is None:
        probs = np.full((len(X_test), run.data.num_classes), 1.0 / run.data.num_classes)  # type: ignore[union-attr]
        return probs, stages.metrics_of(run, probs, None, 0), what + " (not trained: the run stopped)", 0
    probs = probs_on(module, run.to_teacher(X_test) if module is run.external_teacher else X_test)
    params = nets.count_params(module)
    return probs, stages.metrics_of(run, probs, module, params), what, params


def temperature_was_tuned(cfg: DistillConfig, trials: list[Trial]) -> bool:
    """Tuned only when T was left open and at least two temperatures trained an epoch: a run the budget cut before
    its trials tuned nothing, whatever the grid planned; self-distillation keeps one T across generations."""
    trained = {t.temperature for t in trials if t.role != "scratch" and t.temperature is not None and t.val_accuracy >= 0 and t.epochs > 0}
    return cfg.temperature is None and cfg.topology != "self" and len(trained) > 1


def _settings(run: Run, saved, reference: str) -> Settings:  # type: ignore[no-untyped-def]
    cfg = run.cfg
    scratch_member, scratch_result, _ = saved[1] if saved else (None, None, None)
    member, result, _ = saved[2] if saved else (None, None, None)
    return Settings(
        seed=cfg.seed, method=run.method, method_reason=run.method_reason, topology=cfg.topology, reference=reference, arch=run.arch,
        input_layout=cfg.input_layout, standardize=run.scaler.kind if run.scaler else "none", teacher_hidden=run.teacher_hidden,
        student_hidden=run.student_hidden, temperature=member.temperature if member else None, kd_loss_weight=member.kd_weight if member else None,
        learning_rate=member.lr if member else cfg.learning_rate, scratch_learning_rate=scratch_member.lr if scratch_member else None,
        temperature_tuned=temperature_was_tuned(cfg, stages.trial_rows(run)), trials_per_side=sum(1 for m in run.members if m.role == "scratch") // cfg.seeds,
        epochs=run.epochs, epochs_run_distilled=result.epochs_run if result else 0, epochs_run_scratch=scratch_result.epochs_run if scratch_result else 0,
        steps_distilled=result.steps if result else 0, steps_scratch=scratch_result.steps if scratch_result else 0, teacher_epochs=run.teacher_epochs,
        augment=cfg.augment, transfer_set_size=len(run.data.X_unlabeled), stop_reason=run.stop_reason, threads=run.threads,  # type: ignore[union-attr]
        threads_reason=run.threads_reason, time_estimate_s=run.time_estimate_s,
    )


def _cascade(run: Run, distilled_probs: np.ndarray | None, teacher_probs: np.ndarray) -> list[CascadePoint] | None:
    if run.method != "cascade" or distilled_probs is None:
        return None
    guidance = float(get_rules().method["methods"]["cascade"]["hyperparameters"]["confidence_threshold"])
    marked = run.cfg.cascade_threshold if run.cfg.cascade_threshold is not None else guidance
    conf, s_pred, t_pred = distilled_probs.max(1), distilled_probs.argmax(1), teacher_probs.argmax(1)
    y = run.data.y_test  # type: ignore[union-attr]
    return [CascadePoint(threshold=t, accuracy=float(np.mean(np.where(conf >= t, s_pred, t_pred) == y)), share_to_teacher=float(np.mean(conf < t)),
                         is_guidance_threshold=abs(t - marked) < 1e-9)
            for t in sorted({round(x, 2) for x in np.linspace(0.5, 0.99, 11)} | {marked})]


def _diagnose(run: Run, report: DistillReport, distilled_probs, teacher_probs, score, compression) -> None:  # type: ignore[no-untyped-def]
    """kd_diagnose_failure on the saved student's predictions, then the quality gates with the saved student's real T."""
    if distilled_probs is None:
        return
    from skill.diagnose import diagnose_failure
    from skill.gates import check_quality_gates
    from skill.models import DiagnoseFailureRequest, QualityGatesRequest

    cfg, d = run.cfg, run.data
    n = min(len(d.y_test), int(get_rules().failure_modes["raw_limits"]["max_samples"]))  # type: ignore[union-attr]
    report.diagnosis = diagnose_failure(DiagnoseFailureRequest(
        labels=d.y_test[:n].tolist(), student_probs=distilled_probs[:n].tolist(), teacher_probs=teacher_probs[:n].tolist(),  # type: ignore[union-attr]
        groups=d.groups_test[:n].tolist() if d.groups_test is not None else None, positive_class=cfg.positive_class))  # type: ignore[union-attr]
    detected = set(report.diagnosis.detected)
    report.quality_gates = check_quality_gates(QualityGatesRequest(
        # a negative DS (student above its reference) is reported, but the gate only takes DS in its defined range
        alpha=cfg.alpha, alpha_reason="given to the quick distill", distillation_score=score if score is not None and score >= 0 else None,
        stratified_validation=True,
        per_class_thresholds_met="accuracy_mirage" not in detected, temperature=report.settings.temperature,
        temperature_tuned=report.settings.temperature_tuned, calibration_validated="temperature_blindness" not in detected,
        compression_ratio=compression if compression and compression >= 1 else None, cascade_evaluated=run.method == "cascade", accuracy=report.distilled.accuracy if report.distilled else None))


def _summary(r: DistillReport) -> str:
    parts = [f"teacher {r.teacher.accuracy:.4f}"]
    if r.scratch:
        parts.append(f"scratch {r.scratch.accuracy:.4f}")
    if r.distilled:
        parts.append(f"distilled {r.distilled.accuracy:.4f} (ECE {r.distilled.ece:.3f})")
    if r.compression_ratio:
        parts.append(f"{r.compression_ratio:.1f}x smaller")
    if r.comparison:
        parts.append(r.comparison.statement)
    parts.append(r.verdict)
    return "; ".join(parts + r.warnings)


# ---- artifacts ------------------------------------------------------------------------------------------------------------
def save_artifacts(run: Run, report: DistillReport) -> None:
    """The student the verdict recommends, with the input scaling it was trained with."""
    keep = report.artifacts.saved_student or "distilled"
    pair = _pairs(run, [run.cfg.seed])[0]
    model = (pair[1] if keep == "scratch" else pair[2])[1].model
    scaler = {"mean": torch.from_numpy(run.scaler.mean), "std": torch.from_numpy(run.scaler.std)} if run.scaler else None
    report.artifacts = write_artifacts(report, model, run.cfg.output_dir, scaler=scaler, saved_student=keep)
