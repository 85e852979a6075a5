"""Check the ten release gates for a distillation plan or a finished run."""

from __future__ import annotations

from skill.conditions import condition_fields, evaluate, fire_warnings
from skill.models import GateResult, MissingInput, QualityGatesRequest, QualityGatesResponse, TraceEntry
from skill.next_steps import for_run, steps
from skill.rules import get_rules


def check_quality_gates(request: QualityGatesRequest) -> QualityGatesResponse:
    """Each gate: pass when all its conditions hold, fail when one is false, unknown while an input is missing.
    With from_run, the run folder fills every input it can show first (the caller's values win)."""
    from skill.run_evidence import apply_run

    request, run = apply_run(request)
    inputs = request.model_dump()
    trace: list[TraceEntry] = []
    results: list[GateResult] = []
    missing_inputs: list[MissingInput] = []
    for gate in get_rules().quality_gates["gates"]:
        rule = f"gate.{gate['id']}"
        common = {
            "id": gate["id"],
            "title": gate["title"],
            "fix": gate["fix"],
            "references": list(gate["references"]),
            "source": gate.get("source") or "unsourced starting point (quality_gates.yaml)",
        }
        applies = gate.get("applies_when")
        if applies is not None:
            applicable = evaluate(applies, inputs, rule + ".applies_when", trace)
            if applicable is False:
                results.append(GateResult(status="pass", reason="Not applicable here.", **common))
                continue
            if applicable is None:
                fields = [f for f in condition_fields(applies) if inputs.get(f) is None]
                missing_inputs.extend(
                    MissingInput(field=f, effect=f"decides whether gate {gate['id']} applies") for f in fields
                )
                results.append(
                    GateResult(
                        status="unknown", reason="Cannot tell whether this gate applies.", missing=fields, **common
                    )
                )
                continue
        outcomes = [(c, evaluate(c, inputs, rule, trace)) for c in gate["requires"]]
        failed = [c for c, r in outcomes if r is False]
        unknown = [f for c, r in outcomes if r is None for f in condition_fields(c) if inputs.get(f) is None]
        if failed:
            what = ", ".join(
                f"{c['field']} {c['op']} {c.get('value_field', c.get('value', ''))}".strip() for c in failed
            )
            results.append(GateResult(status="fail", reason=f"Not met: {what}.", missing=unknown, **common))
        elif unknown:
            results.append(
                GateResult(status="unknown", reason="Missing: " + ", ".join(unknown) + ".", missing=unknown, **common)
            )
        else:
            results.append(GateResult(status="pass", reason="All conditions met.", **common))
        missing_inputs.extend(MissingInput(field=f, effect=f"needed by gate {gate['id']}") for f in unknown)
    counts = {s: sum(r.status == s for r in results) for s in ("pass", "fail", "unknown")}
    return QualityGatesResponse(
        gates=results,
        passed=counts["pass"],
        failed=counts["fail"],
        unknown=counts["unknown"],
        ready_to_ship=counts["pass"] == len(results),
        rule_trace=trace,
        warnings=fire_warnings(get_rules().score["warnings"], inputs, "gates", trace),
        missing_inputs=missing_inputs,
        next_steps=(for_run(run.run_dir, request.alpha) if run else steps("diagnose", "distill"))
        if counts["fail"] or counts["unknown"]
        else [],
        references=["references/quality-gates.md"],
        run_evidence=run,
    )
