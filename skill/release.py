"""The release check: from a finished run folder to one decision (ship, ship with conditions, do not ship) and why.

It runs the diagnosis, the ten gates and the score on the run's own files (skill.run_evidence), compares the
distilled student with the from-scratch one when the run trained it, and for a generation run applies the
generation checks of release.yaml. Every threshold is in the rule files; this module only combines the answers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from skill.errors import InputError
from skill.models import (
    RUN_DIR_DESCRIPTION,
    Accuracy,
    Advice,
    AdviceWarning,
    DiagnoseFailureRequest,
    DiagnoseFailureResponse,
    Fraction,
    NextStep,
    QualityGatesRequest,
    QualityGatesResponse,
    RunEvidence,
    ScoreDistillationRequest,
    ScoreDistillationResponse,
    Strict,
)
from skill.rules import get_rules

if TYPE_CHECKING:
    import numpy as np

    from skill.run_evidence import Run

_REF = "references/release-check.md"


class ReleaseCheckRequest(Strict):
    """A finished run folder, plus the deployment facts and budgets only a person can give."""

    run_dir: str = Field(min_length=1, max_length=1000, description=RUN_DIR_DESCRIPTION)
    alpha: Fraction | None = Field(
        None,
        description="Size-versus-accuracy priority (kd_choose_alpha); default: the plan's (config.yaml release.alpha)",
    )
    alpha_reason: str | None = Field(None, max_length=2000, description="Why this alpha")
    min_student_accuracy: Accuracy | None = Field(
        None, description="Accuracy floor the student must reach; below it: do not ship"
    )
    accuracy_target: Accuracy | None = Field(None, description="Accuracy budget for the budgets gate")
    latency_budget_ms: float | None = Field(
        None, ge=0, le=1e7, allow_inf_nan=False, description="Latency budget per sample at batch 1"
    )
    memory_budget_mb: float | None = Field(
        None, ge=0, le=1e9, allow_inf_nan=False, description="Memory budget of the student's weights"
    )
    latency_ms: float | None = Field(
        None,
        ge=0,
        le=1e7,
        allow_inf_nan=False,
        description="Latency measured on the target device "
        "(default: the run's batch-1 latency on its own device; a generation run measures none)",
    )
    accuracy: Accuracy | None = Field(
        None, description="Task accuracy measured elsewhere (default: the run's test accuracy)"
    )
    temperature_tuned: bool | None = Field(
        None, description="Whether T was tuned (read from config.yaml when the export recorded it)"
    )
    bias_monitoring: bool | None = None
    edge_case_monitoring: bool | None = None
    robustness_suite: bool | None = Field(
        None, description="Adversarial / out-of-distribution / minority-class tests exist"
    )
    cascade_evaluated: bool | None = None
    rollback_plan: bool | None = None
    degradation_alerts: bool | None = None


class BaselineComparison(BaseModel):
    """Distilled against from-scratch on the same test rows: a paired bootstrap of the accuracy difference."""

    distilled_accuracy: float
    scratch_accuracy: float
    difference: float
    interval: list[float] = Field(min_length=2, max_length=2)
    confidence: float
    rows: int
    verdict: Literal["gain", "no_gain_shown", "scratch_better"]
    statement: str


class GenerationCheck(BaseModel):
    id: str
    metric: str
    value: float | None = Field(description="null when the run could not measure it (see reason)")
    threshold: float
    comparison: str
    status: Literal["pass", "fail", "unknown"]
    severity: Literal["block", "condition"]
    why: str
    reason: str | None = Field(None, description="Why the value is unknown, and what would measure it")
    source: str = Field(description="Where the threshold comes from")


class ReleaseCheckResponse(Advice):
    decision: Literal["ship", "ship_with_conditions", "do_not_ship"]
    summary: str = Field(description="One paragraph: the decision and why, with the run's own numbers")
    blockers: list[str] = Field(default_factory=list, description="Why not to ship, each with its number")
    conditions: list[str] = Field(default_factory=list, description="What to settle before shipping")
    kind: Literal["classification", "generation"]
    run_evidence: RunEvidence
    diagnosis: DiagnoseFailureResponse | None = None
    gates: QualityGatesResponse
    score: ScoreDistillationResponse | None = None
    score_missing: str | None = Field(None, description="Why no score was computed")
    baseline_comparison: BaselineComparison | None = None
    generation_checks: list[GenerationCheck] = Field(default_factory=list)
    samples: list[dict[str, str]] = Field(
        default_factory=list, description="A few prompt / teacher / student completions to read"
    )


_GATE_FACTS = (
    "alpha",
    "alpha_reason",
    "accuracy_target",
    "latency_budget_ms",
    "memory_budget_mb",
    "latency_ms",
    "accuracy",
    "temperature_tuned",
    "bias_monitoring",
    "edge_case_monitoring",
    "robustness_suite",
    "cascade_evaluated",
    "rollback_plan",
    "degradation_alerts",
)


def _baseline(labels: np.ndarray, student: np.ndarray, scratch: np.ndarray) -> BaselineComparison:
    """Paired bootstrap over test rows (release.yaml baseline_comparison): test-set noise of one run, not seed noise."""
    import numpy as np

    rule = get_rules().release["baseline_comparison"]
    hit_s = (student.argmax(1) == labels).astype(np.float64)
    hit_b = (scratch.argmax(1) == labels).astype(np.float64)
    diff = hit_s - hit_b
    rng = np.random.default_rng(int(rule["seed"]))
    means = np.array([diff[rng.integers(0, len(diff), len(diff))].mean() for _ in range(int(rule["resamples"]))])
    tail = (1 - float(rule["confidence"])) / 2
    low, high = (float(v) for v in np.quantile(means, [tail, 1 - tail]))
    verdict: Literal["gain", "no_gain_shown", "scratch_better"] = (
        "gain" if low > 0 else "scratch_better" if high < 0 else "no_gain_shown"
    )
    words = {
        "gain": "distillation beats the from-scratch student beyond test-set noise",
        "no_gain_shown": "the difference from the from-scratch student is within test-set noise",
        "scratch_better": "the from-scratch student is better beyond test-set noise",
    }[verdict]
    statement = (
        f"distilled {hit_s.mean():.4f} vs scratch {hit_b.mean():.4f} on {len(diff)} test rows: "
        f"difference {diff.mean():+.4f}, "
        f"{rule['confidence']:.0%} paired-bootstrap interval [{low:+.4f}, {high:+.4f}]: {words} (one seed each)"
    )
    return BaselineComparison(
        distilled_accuracy=float(hit_s.mean()),
        scratch_accuracy=float(hit_b.mean()),
        difference=float(diff.mean()),
        interval=[low, high],
        confidence=float(rule["confidence"]),
        rows=len(diff),
        verdict=verdict,
        statement=statement,
    )


def _different_tokenizers(held: dict[str, Any]) -> bool:
    """The recipe records same_tokenizer; older files show it as a teacher NLL without a KL (no shared vocabulary)."""
    if held.get("same_tokenizer") is not None:
        return not held["same_tokenizer"]
    return held["teacher_nll_per_token"] is not None and held["token_kl_teacher_to_student"] is None


def _generation_metrics(held: dict[str, Any]) -> tuple[dict[str, float | None], dict[str, str]]:
    """Each checked metric, or None with the reason it cannot be measured from this run."""
    values: dict[str, float | None] = {k: held.get(k) for k in held}
    unknown: dict[str, str] = {}
    api = held["teacher_nll_per_token"] is None
    two = _different_tokenizers(held)
    if held["n_tokens"] == 0:
        reason = "no held-out token was scored (empty completions or prompts cut away); add held-out rows"
        unknown.update(
            {k: reason for k in ("perplexity_ratio", "token_kl_teacher_to_student", "greedy_next_token_agreement")}
        )
    if api:
        unknown.setdefault(
            "perplexity_ratio",
            "the teacher's NLL is null: no local teacher weights (an API or "
            "served teacher); score the held-out text with the teacher's log-probabilities to compare",
        )
    elif two:
        unknown.setdefault(
            "perplexity_ratio",
            "teacher and student use different tokenizers, so their per-token "
            "NLLs are in different token units; compare per-character or per-byte NLL instead",
        )
    if held["token_kl_teacher_to_student"] is None:
        unknown.setdefault(
            "token_kl_teacher_to_student",
            "different tokenizers: no shared vocabulary to compare over"
            if two
            else "no local teacher: the KL needs the teacher's full next-token distribution",
        )
    if held["greedy_next_token_agreement"] is None:
        unknown.setdefault(
            "greedy_next_token_agreement",
            "different tokenizers: next tokens are not comparable"
            if two
            else "no local teacher: agreement needs the teacher's next-token choice",
        )
    if "perplexity_ratio" not in unknown:
        values["perplexity_ratio"] = math.exp(min(50.0, held["student_nll_per_token"] - held["teacher_nll_per_token"]))
    for key in unknown:
        values[key] = None
    return values, unknown


def _generation_checks(document: dict[str, Any]) -> list[GenerationCheck]:
    """release.yaml generation.checks on the run's held-out numbers; a number the run could not measure is unknown."""
    metrics, unknown = _generation_metrics(document["heldout"])
    checks = []
    for rule in get_rules().release["generation"]["checks"]:
        value = metrics.get(rule["metric"])
        ok = None if value is None else (value >= rule["value"] if rule["op"] == "ge" else value <= rule["value"])
        checks.append(
            GenerationCheck(
                id=rule["id"],
                metric=rule["metric"],
                value=None if value is None else float(f"{float(value):.6g}"),
                threshold=rule["value"],
                comparison=f"pass if value {'>=' if rule['op'] == 'ge' else '<='} threshold",
                status="unknown" if ok is None else "pass" if ok else "fail",
                severity=rule["severity"],
                why=rule["why"],
                reason=unknown.get(rule["metric"]),
                source=rule.get("source", "unsourced starting point (release.yaml generation.checks)"),
            )
        )
    return checks


def release_check(request: ReleaseCheckRequest) -> ReleaseCheckResponse:
    """Diagnosis, gates and score on the run's files, then the decision with the numbers that made it."""
    try:
        return _release_check(request)
    except InputError as exc:
        if exc.field != "from_run":
            raise
        raise InputError("run_dir", str(exc).removeprefix("from_run: ")) from None


@dataclass
class _Reasons:
    """What stands between the run and shipping, in the order found: blockers, conditions to settle first, and the
    warnings that go with them."""

    blockers: list[str] = field(default_factory=list)
    conditions: list[str] = field(default_factory=list)
    warnings: list[AdviceWarning] = field(default_factory=list)

    def add(self, blocking: bool, text: str) -> None:
        (self.blockers if blocking else self.conditions).append(text)


def _score_run(request: ReleaseCheckRequest) -> tuple[ScoreDistillationResponse | None, str | None]:
    """The distillation score at the caller's alpha and floor (the plan's by default), or why it cannot be computed."""
    from skill.score import score_distillation

    try:
        score = score_distillation(
            ScoreDistillationRequest(
                from_run=request.run_dir,
                **({"alpha": request.alpha} if request.alpha is not None else {}),
                **(
                    {"min_student_accuracy": request.min_student_accuracy}
                    if request.min_student_accuracy is not None
                    else {}
                ),
            )
        )
    except InputError as exc:
        return None, str(exc).removeprefix("from_run: ")
    return score, None


def _gate_reasons(
    reasons: _Reasons, gates: QualityGatesResponse, not_applicable: set[str], rules: Mapping[str, Any]
) -> None:
    """A failed gate blocks unless the rules make it a condition; an unknown one is a condition if the rules say so."""
    for gate in gates.gates:
        if gate.id in not_applicable:
            continue
        if gate.status == "fail":
            text = f"gate {gate.id} fails ({gate.reason.rstrip('.')}); fix: {gate.fix}"
            reasons.add(gate.id not in rules["decision"]["failed_gate_is_condition"], text)
        elif gate.status == "unknown" and rules["decision"]["unknown_gate_is_condition"]:
            reasons.conditions.append(f"gate {gate.id} unknown ({gate.reason.rstrip('.')}): {gate.fix}")


def _finding_reasons(reasons: _Reasons, diagnosis: DiagnoseFailureResponse, rules: Mapping[str, Any]) -> None:
    """A detected failure mode blocks when the rules list it as blocking, else it is a condition."""
    for finding in diagnosis.findings:
        if finding.status == "detected":
            reasons.add(finding.id in rules["decision"]["blocking_findings"], f"{finding.id}: {finding.diagnosis}")


def _baseline_reasons(reasons: _Reasons, run: Run, rules: Mapping[str, Any]) -> BaselineComparison | None:
    """When the run trained a from-scratch student: a better one blocks, a gain within noise is a condition."""
    if run.kind != "classification" or "baseline_probs" not in run.arrays:
        return None
    comparison = _baseline(run.arrays["labels"], run.arrays["student_probs"], run.arrays["baseline_probs"])
    if comparison.verdict == "scratch_better":
        reasons.blockers.append(f"baseline: {comparison.statement}; {_scratch_advice(run, rules)}")
    elif comparison.verdict == "no_gain_shown":
        reasons.conditions.append(
            f"baseline: {comparison.statement}; distillation's gain is not shown, so either student may ship"
        )
    return comparison


def _floor_reason(
    reasons: _Reasons, run: Run, request: ReleaseCheckRequest, score: ScoreDistillationResponse | None
) -> None:
    """A single student below the caller's accuracy floor blocks (a ranking marks its own students)."""
    if score is None or request.min_student_accuracy is None or score.ranking is not None:
        return
    student_accuracy = run.model("student").get("accuracy")
    if isinstance(student_accuracy, (int, float)) and student_accuracy < request.min_student_accuracy:
        reasons.blockers.append(
            f"student accuracy {student_accuracy:.4f} is below the floor {request.min_student_accuracy:g}"
        )


def _one_class_reason(reasons: _Reasons, run: Run) -> None:
    """A test set of one class says nothing about the others: a condition, and a warning."""
    import numpy as np

    present = np.unique(run.arrays["labels"])
    if len(present) >= 2:
        return
    text = (
        f"the test set holds one class ({len(run.arrays['labels'])} rows of class {int(present[0])}, "
        f"of {run.evidence['classes']}; predictions.npz labels): accuracy and the per-class checks say "
        "nothing about the other classes; test on a set that holds every class"
    )
    reasons.conditions.append(text)
    reasons.warnings.append(AdviceWarning(id="one_class_test_set", message=text, references=[_REF]))


def _generation_reasons(
    reasons: _Reasons, run: Run, rules: Mapping[str, Any]
) -> tuple[list[GenerationCheck], list[dict[str, str]]]:
    """The generation checks (a failure blocks or is a condition by its severity; unknown is a condition) and the
    samples to read."""
    checks = _generation_checks(run.evidence)
    for check in checks:
        if check.status == "fail":
            text = f"{check.id}: {check.metric} {check.value:.4g} against {check.threshold:g} ({check.why})"
            reasons.add(check.severity == "block", text)
        elif check.status == "unknown":
            reasons.conditions.append(f"{check.id}: {check.metric} not measured by this run ({check.reason})")
    samples = [dict(s) for s in run.evidence["samples"][: int(rules["limits"]["max_samples_shown"])]]
    return checks, samples


def _alpha_used(request: ReleaseCheckRequest, run: Run) -> tuple[float | None, str]:
    """The alpha the score used and where it came from: the caller's, else the plan's."""
    from skill.run_evidence import score_values

    plan, plan_source, _ = score_values(run)
    alpha_used = request.alpha if request.alpha is not None else plan.get("alpha")
    alpha_from = "your --alpha" if request.alpha is not None else plan_source.get("alpha", "").split(" (")[0]
    return alpha_used, alpha_from


def _release_check(request: ReleaseCheckRequest) -> ReleaseCheckResponse:
    from skill.diagnose import diagnose_failure
    from skill.gates import check_quality_gates
    from skill.run_evidence import read_run

    run = read_run(request.run_dir)
    rules = get_rules().release
    facts = {k: getattr(request, k) for k in _GATE_FACTS if getattr(request, k) is not None}
    gates = check_quality_gates(QualityGatesRequest(from_run=request.run_dir, **facts))
    diagnosis = (
        diagnose_failure(DiagnoseFailureRequest(from_run=request.run_dir)) if run.kind == "classification" else None
    )
    score, score_missing = _score_run(request)
    assert gates.run_evidence is not None
    evidence = _merged(
        [part.run_evidence for part in (gates, diagnosis, score) if part is not None and part.run_evidence is not None]
    )
    not_applicable = set(rules["generation"]["not_applicable_gates"]) if run.kind == "generation" else set()
    if run.kind == "generation":
        gates = _for_generation(gates, not_applicable, rules["generation"].get("gate_fixes") or {})
    reasons = _Reasons()
    _gate_reasons(reasons, gates, not_applicable, rules)
    if diagnosis is not None:
        _finding_reasons(reasons, diagnosis, rules)
    comparison = _baseline_reasons(reasons, run, rules)
    _floor_reason(reasons, run, request, score)
    checks: list[GenerationCheck] = []
    samples: list[dict[str, str]] = []
    if run.kind == "classification":
        _one_class_reason(reasons, run)
    else:
        checks, samples = _generation_reasons(reasons, run, rules)
    blockers, conditions = reasons.blockers, reasons.conditions
    decision: Literal["ship", "ship_with_conditions", "do_not_ship"] = (
        "do_not_ship" if blockers else "ship_with_conditions" if conditions else "ship"
    )
    alpha_used, alpha_from = _alpha_used(request, run)
    return ReleaseCheckResponse(
        decision=decision,
        summary=_summary(decision, run, blockers, conditions, score, comparison, checks, (alpha_used, alpha_from)),
        blockers=blockers,
        conditions=conditions,
        kind=run.kind,
        run_evidence=evidence,
        diagnosis=diagnosis,
        gates=gates,
        score=score,
        score_missing=score_missing,
        baseline_comparison=comparison,
        generation_checks=checks,
        samples=samples,
        warnings=[
            *reasons.warnings,
            *(diagnosis.warnings if diagnosis else []),
            *gates.warnings,
            *(score.warnings if score else []),
        ],
        missing_inputs=gates.missing_inputs,
        next_steps=[] if decision == "ship" else _next(run, request, alpha_used),
        references=[_REF, "references/quality-gates.md", "references/failure-modes.md"],
    )


def _for_generation(
    gates: QualityGatesResponse, not_applicable: set[str], fixes: dict[str, str]
) -> QualityGatesResponse:
    """A generation run's gates: the classification-only ones pass as not applicable (as the gates engine marks a
    gate whose applies_when is false), and fixes written for the classification runner get the LLM wording."""
    results = []
    for gate in gates.gates:
        if gate.id in not_applicable:
            gate = gate.model_copy(
                update={
                    "status": "pass",
                    "reason": "Not applicable to a generation run (release.yaml generation.not_applicable_gates).",
                    "missing": [],
                }
            )
        if gate.id in fixes:
            gate = gate.model_copy(update={"fix": fixes[gate.id]})
        results.append(gate)
    counts = {s: sum(g.status == s for g in results) for s in ("pass", "fail", "unknown")}
    missing = [m for m in gates.missing_inputs if not any(m.effect.endswith(f"gate {g}") for g in not_applicable)]
    return gates.model_copy(
        update={
            "gates": results,
            "passed": counts["pass"],
            "failed": counts["fail"],
            "unknown": counts["unknown"],
            "ready_to_ship": counts["pass"] == len(results),
            "missing_inputs": missing,
        }
    )


def _scratch_advice(run: Run, rules: Mapping[str, Any]) -> str:
    """Before recommending the from-scratch student, run the same diagnosis on it: a student the same checks would
    block is no recommendation. Worded as what it is, one seed of each."""
    from skill.diagnose import diagnose_failure

    arrays = run.arrays
    request = DiagnoseFailureRequest(
        labels=arrays["labels"].astype(int).tolist(),
        student_probs=arrays["baseline_probs"].astype(float).tolist(),
        teacher_probs=arrays["teacher_probs"].astype(float).tolist() if "teacher_probs" in arrays else None,
        groups=[str(g) for g in arrays["groups"].tolist()] if "groups" in arrays else None,
    )
    findings = diagnose_failure(request).findings
    blocked = [f.id for f in findings if f.status == "detected" and f.id in rules["decision"]["blocking_findings"]]
    if blocked:
        return (
            "on this one seed the from-scratch student scores higher, but the same checks block it too "
            f"({', '.join(blocked)}, from baseline_probs): neither student ships as is"
        )
    return (
        "on this one seed the from-scratch student scores higher and passes the same diagnosis (baseline_probs); "
        "confirm over more seeds, then consider shipping it instead"
    )


def _next(run: Run, request: ReleaseCheckRequest, alpha: float | None) -> list[NextStep]:
    """What to run next for this run: the release check again once the conditions are settled, with the run's own
    alpha (not a generic example)."""
    at = f" --alpha {alpha:g}" if alpha is not None else " --alpha A --alpha-reason '...'"
    return [
        NextStep(
            tool="kd_release_check",
            cli=f"kd-skill release-check {run.shown}{at} --rollback-plan true ...",
            why="Rerun this check with the deployment facts and budgets once the conditions are settled.",
        )
    ]


def _merged(parts: list[RunEvidence]) -> RunEvidence:
    """One account of the run's numbers over the three tools: each field once, with its source."""
    filled = {v.field: v for part in parts for v in part.filled}
    missing = {m.field: m for part in parts for m in part.missing if m.field not in filled}
    overridden = sorted({name for part in parts for name in part.overridden})
    return RunEvidence(
        run_dir=parts[0].run_dir,
        kind=parts[0].kind,
        filled=list(filled.values()),
        overridden=overridden,
        missing=list(missing.values()),
    )


def _summary(
    decision: str,
    run: Run,
    blockers: list[str],
    conditions: list[str],
    score: ScoreDistillationResponse | None,
    comparison: BaselineComparison | None,
    checks: list[GenerationCheck],
    alpha: tuple[float | None, str] = (None, ""),
) -> str:
    """One paragraph a person can act on: the verdict, the run's headline numbers, then the reasons."""
    head = {"ship": "Ship.", "ship_with_conditions": "Ship with conditions.", "do_not_ship": "Do not ship."}[decision]
    if run.kind == "classification":
        s, t = run.model("student"), run.model("teacher")
        nan = float("nan")
        ratio = t.get("params", 0) / max(1, s.get("params", 1))
        numbers = (
            f"The student ({s.get('params', 0):,} parameters, {ratio:.1f}x smaller than the teacher) reaches accuracy "
            f"{s.get('accuracy', nan):.4f} (teacher {t.get('accuracy', nan):.4f}), "
            f"ECE {s.get('ece', nan):.3f} (teacher {t.get('ece', nan):.3f}), "
            f"{s.get('latency_ms_batch1', nan):.3f} ms per sample at batch 1 on {s.get('device', '?')}"
        )
        if comparison is not None:
            numbers += f"; {comparison.statement}"
    else:
        held, models = run.evidence["heldout"], run.evidence["models"]

        def shown(value: float | None) -> str:
            return "not measured" if value is None else f"{value:.4g}" if abs(value) >= 1000 else f"{value:.3f}"

        size = (
            f"{models['teacher_params'] / models['student_params']:.1f}x smaller"
            if models["teacher_params"] is not None
            else "teacher size unknown"
        )
        numbers = (
            f"The student ({models['student_params']:,} parameters, {size}) has held-out NLL "
            f"{shown(held['student_nll_per_token'])} per token (teacher: {shown(held['teacher_nll_per_token'])}), "
            f"token KL {shown(held['token_kl_teacher_to_student'])}, "
            f"greedy agreement {shown(held['greedy_next_token_agreement'])} over {held['n_tokens']:,} tokens "
            "(generation_evidence.json)"
        )
        if _different_tokenizers(held):
            numbers += " (teacher and student use different tokenizers: the NLLs are per each one's own tokens)"
    if score is not None and alpha[0] is not None:
        numbers += f"; DS {score.score:.4f} at alpha {alpha[0]:g} ({alpha[1] or 'the plan'})"
    reasons = ""
    if blockers:
        reasons += f" Blocking ({len(blockers)}): " + " ".join(
            f"({i + 1}) {b.rstrip('.')}." for i, b in enumerate(blockers[:4])
        )
        reasons += f" And {len(blockers) - 4} more." if len(blockers) > 4 else ""
    if conditions:
        names = [c.split(" (")[0].split(":")[0] for c in conditions]
        names = ["no gain over the from-scratch student shown" if n == "baseline" else n for n in names]
        reasons += f" To settle before release ({len(conditions)}): " + "; ".join(names) + "."
    return f"{head} {numbers}.{reasons}"
