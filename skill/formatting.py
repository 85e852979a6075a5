"""Readable text for a person, built from any response model (the CLI's --format text)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel


def _release_lines(data: dict[str, Any]) -> list[str]:
    """A release check: the verdict, then each part it rests on, the generation checks and samples, and the run."""
    lines = [f"Decision: {data['decision']}", f"  {data['summary']}"]
    for part in ("diagnosis", "gates", "score"):
        if data.get(part):
            lines += [f"-- {part}"] + _headline(data[part], with_run=False)
    if data.get("score_missing"):
        lines.append(f"-- score not computed: {data['score_missing']}")
    for check in data.get("generation_checks", []):
        lines.append(
            f"  [{check['status']:>7}] {check['id']}: {check['metric']} = {check['value']} ({check['comparison']} "
            f"{check['threshold']})"
            + (f": {check['reason']}" if check.get("reason") else "")
            + (f" [source: {check['source']}]" if check.get("source") else "")
        )
    for sample in data.get("samples", []):
        lines.append(
            f"  prompt {sample['prompt'][:80]!r}: teacher {sample['teacher'][:80]!r} / student "
            f"{sample['student'][:80]!r}"
        )
    return lines + _run_lines(data)


def _method_lines(data: dict[str, Any]) -> list[str]:
    """A method recommendation: the method with its hyperparameters, the topology, then the questions of both."""
    m, t = data["method"], data["topology"]
    lines = [f"Method:   {m['name']} ({m['id']}) - {m['reason']}"]
    lines += [f"          {key}: {value}" for key, value in m["hyperparameters"].items()]
    lines.append(f"Topology: {t['name']} ({t['id']}) - {t['reason']}")
    lines += [f"ask:      {q}" for q in dict.fromkeys([*m.get("questions", []), *t.get("questions", [])])]
    return lines


def _alpha_lines(data: dict[str, Any]) -> list[str]:
    """An alpha choice: the point value, its range and reason, and the checkpoints when routing allows them."""
    lines = [
        f"Alpha:    {data['alpha']} (range {data['alpha_range'][0]} to {data['alpha_range'][1]}) - {data['reason']}"
    ]
    if data.get("checkpoints"):
        lines.append(f"          checkpoints: {data['checkpoints']}")
    return lines


def _score_lines(data: dict[str, Any]) -> list[str]:
    """A distillation score: both terms, the reading, and the ranking with students below the floor marked."""
    lines = [
        f"Score:    {data['score']:.4f} = size {data['size_term']:.4f} + accuracy {data['accuracy_term']:.4f}",
        f"          {data['interpretation']}",
    ]
    for row in data.get("ranking") or []:
        floor = " BELOW THE ACCURACY FLOOR" if row.get("meets_accuracy_floor") is False else ""
        lines.append(
            f"  #{row['rank']} {row['name']}: DS {row['score']:.4f} (size {row['size']}, accuracy "
            f"{row['accuracy']}){floor}"
        )
    return lines


def _finding_lines(data: dict[str, Any]) -> list[str]:
    """A diagnosis: each failure mode with its evidence, the fix when detected and the source when evaluated."""
    lines: list[str] = []
    for f in data["findings"]:
        lines.append(f"[{f['status']:>13}] {f['name']}: {f['diagnosis']}")
        for e in f["evidence"]:
            lines.append(f"                {e['metric']} = {e['value']} vs {e['threshold']} ({e['comparison']})")
        if f["status"] == "detected":
            lines.append(f"                fix: {f['fix']}")
        if f.get("source") and f["status"] != "not_evaluated":
            lines.append(f"                source: {f['source']}")
    return lines


def _gate_lines(data: dict[str, Any]) -> list[str]:
    """Quality gates: the counts, then each gate with its reason and source."""
    lines = [f"Gates: {data['passed']} pass, {data['failed']} fail, {data['unknown']} unknown"]
    for g in data["gates"]:
        lines.append(
            f"  [{g['status']:>7}] {g['title']}: {g['reason']}"
            + (f" [source: {g['source']}]" if g.get("source") else "")
        )
    return lines


def _model_rows(data: dict[str, Any]) -> list[str]:
    """A quick distill's three models; the students' rows are the saved seed's models (the means over seeds are in
    the headline and below), and a teacher given as logits has no size."""
    settings = data.get("settings") or {}
    seed = settings.get("seed", 0)
    logits_teacher = str(settings.get("teacher_source", "")).startswith("given: precomputed logits")
    lines: list[str] = []
    for name in ("teacher", "scratch", "distilled"):
        m = data.get(name)
        if not m:
            continue
        label = name if name == "teacher" else f"{name} (seed {seed})"
        size = (
            "params n/a (given as logits)"
            if name == "teacher" and logits_teacher
            else (
                f"params {m['params']:>8}  latency {m['latency_ms_batch1']:.3f} ms  throughput "
                f"{m['throughput_per_s_batch256']:.0f}/s"
            )
        )
        lines.append(f"  {label:<18} acc {m['accuracy']:.4f}  ECE {m['ece']:.3f}  {size}")
    return lines


def _seed_lines(comparison: dict[str, Any]) -> list[str]:
    """With more than one seed: scratch against distilled per seed, and the means over seeds."""
    if len(comparison.get("pairs") or []) <= 1:
        return []
    per_seed = "; ".join(
        f"seed {p['seed']} {p['scratch_accuracy']:.4f} -> {p['distilled_accuracy']:.4f} ({p['gain_points']:+.2f})"
        for p in comparison["pairs"]
    )
    lines = [f"  per seed (scratch -> distilled): {per_seed}"]
    if comparison.get("scratch_mean_accuracy") is not None:
        lines.append(
            f"  mean over {len(comparison['pairs'])} seeds: scratch {comparison['scratch_mean_accuracy']:.4f}, "
            f"distilled {comparison['distilled_mean_accuracy']:.4f} ({comparison['mean_gain_points']:+.2f} points)"
        )
    return lines


def _trial_line(t: dict[str, Any]) -> str:
    """One tuning trial: scratch trials vary the learning rate, distilled ones T and the loss weight."""
    setting = (
        f"T={t['temperature']:g} w={t['kd_loss_weight']:g}"
        if t.get("temperature") is not None and t.get("kd_loss_weight") is not None
        else f"lr={t['learning_rate']:g}"
    )
    generation = f" generation {t['generation']}" if t.get("generation") is not None else ""
    chosen = "  <- selected" if t.get("selected") else ""
    return (
        f"  trial {t['role']} seed {t['seed']} {setting}{generation}: val acc {t['val_accuracy']:.4f} "
        f"({t['epochs']} epochs, {t.get('stopped_by', 'early_stopping').replace('_', ' ')}){chosen}"
    )


def _plan_line(p: dict[str, Any]) -> str:
    """How the time budget was spent: the teacher's share, the trials, and what was cut or restored."""
    teacher = f"share {p['teacher_share_s']:.0f} s" if p.get("teacher_share_s") is not None else "given or none"
    return (
        f"  plan: teacher first ({teacher}), then {p['trials_per_side']} trial(s) per side x {p['seeds']} "
        f"seed(s) x {p['epochs']} epochs; cut: {'; '.join(p['cuts']) or 'nothing'}"
        + (f"; re-planned: {'; '.join(p['replanned'])}" if p.get("replanned") else "")
    )


def _quick_distill_lines(data: dict[str, Any]) -> list[str]:
    """A quick distill's report: the models, the seeds, the trials and plan, then its verdict and where things are."""
    lines = [f"Quick distill on {data['dataset']}: {data['summary']}"]
    lines += _model_rows(data)
    lines += _seed_lines(data.get("comparison") or {})
    lines += [_trial_line(t) for t in data.get("trials", [])]
    if data.get("plan"):
        lines.append(_plan_line(data["plan"]))
    settings = data.get("settings") or {}
    if settings.get("scratch_search"):
        lines.append(
            f"  search: scratch lr {settings['scratch_search']}; distilled [T, w] "
            f"{settings.get('distilled_search')} at scratch's selected lr"
        )
    if data.get("comparison"):
        lines.append(f"  comparison: {data['comparison']['statement']}")
    if data.get("verdict"):
        lines.append(f"  verdict: {data['verdict']}")
    if data.get("diagnosis"):
        lines.append(f"  diagnosis: detected {data['diagnosis']['detected'] or 'nothing'}")
    lines.append(f"  settings: {data['settings']}")
    lines.append(f"  wall time (s): {data['wall_time_s']}")
    lines.append(f"  artifacts: {data['artifacts']}")
    return lines


def _route_lines(data: dict[str, Any]) -> list[str]:
    """A route answer: the verdict and its target, where to go instead, how sure, and what to ask."""
    target = data.get("skill") or data.get("boundary") or ""
    lines = [f"Verdict:  {data['verdict']} {target}".rstrip() + f" - {data['reason']}"]
    if data.get("skill"):
        lines.append(f"          installed: {data['installed']}; fallback: {data['fallback']}")
    elif data.get("fallback"):
        lines.append(f"          instead: {data['fallback']}")
    lines.append(f"          confidence: {data['confidence']}; decided by: {data['decided_by']}")
    if data.get("learned_reading"):
        lines.append(f"          learned reader: {data['learned_reading']}")
    if data.get("question"):
        lines.append(f"          ask the user: {data['question']}")
    return lines


# Each kind of response, recognised by its fields, and the lines that show it, in the order they are shown. A quick
# distill's verdict is words and it has no reason field, so a route answer is told apart by verdict with reason.
_SECTIONS: list[tuple[Callable[[dict[str, Any]], bool], Callable[[dict[str, Any]], list[str]]]] = [
    (lambda d: "method" in d and isinstance(d["method"], dict), _method_lines),
    (lambda d: "alpha_range" in d, _alpha_lines),
    (lambda d: "interpretation" in d, _score_lines),
    (lambda d: "findings" in d, _finding_lines),
    (lambda d: "gates" in d, _gate_lines),
    (lambda d: "settings" in d and "teacher" in d, _quick_distill_lines),
    (lambda d: "verdict" in d and "reason" in d, _route_lines),
]


def _headline(data: dict[str, Any], with_run: bool = True) -> list[str]:
    """The decision, whatever the tool: each known decision field gets its lines."""
    if "decision" in data and "summary" in data:
        return _release_lines(data)
    lines = [line for applies, show in _SECTIONS if applies(data) for line in show(data)]
    return lines + (_run_lines(data) if with_run else [])


def _run_lines(data: dict[str, Any]) -> list[str]:
    """With from_run: which numbers came from the run folder, which the caller replaced, which it lacks and why."""
    lines: list[str] = []
    run = data.get("run_evidence")
    if run:
        lines.append(f"-- from the run {run['run_dir']} ({run['kind']}):")
        lines += [f"  {v['field']} <- {v['source']}" for v in run["filled"]]
        lines += [f"  {name}: your value replaced the run's" for name in run["overridden"]]
        lines += [f"  not in the run: {m['field']} ({m['effect']})" for m in run["missing"]]
    return lines


def to_text(response: BaseModel | dict[str, Any]) -> str:
    """A model, or its JSON form (for example an MCP tool's structuredContent)."""
    data = response if isinstance(response, dict) else response.model_dump(mode="json")
    lines = _headline(data)
    for w in data.get("warnings", []):  # advice warnings carry an id; a quick distill's are sentences
        lines.append(f"WARNING {w['id']}: {w['message']}" if isinstance(w, dict) else f"WARNING: {w}")
    for m in data.get("missing_inputs", []):
        lines.append(f"missing {m['field']}: {m['effect']}")
    for d in data.get("delegations", []):
        lines.append(f"delegate {d['skill']} (installed: {d['installed']}): {d['reason']}")
    for s in data.get("next_steps", []):
        lines.append(f"next: {s['tool']} / {s['cli']} - {s['why']}")
    if data.get("references"):
        lines.append("read: " + ", ".join(data["references"]))
    return "\n".join(lines)
