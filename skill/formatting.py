"""Readable text for a person, built from any response model (the CLI's --format text)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


def _headline(data: dict[str, Any], with_run: bool = True) -> list[str]:
    """The decision, whatever the tool: each known decision field gets one line."""
    lines: list[str] = []
    if "decision" in data and "summary" in data:  # a release check: the verdict, then each part it rests on
        lines += [f"Decision: {data['decision']}", f"  {data['summary']}"]
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
    if "method" in data and isinstance(data["method"], dict):
        m, t = data["method"], data["topology"]
        lines.append(f"Method:   {m['name']} ({m['id']}) - {m['reason']}")
        for key, value in m["hyperparameters"].items():
            lines.append(f"          {key}: {value}")
        lines.append(f"Topology: {t['name']} ({t['id']}) - {t['reason']}")
        for question in dict.fromkeys([*m.get("questions", []), *t.get("questions", [])]):
            lines.append(f"ask:      {question}")
    if "alpha_range" in data:
        lines.append(
            f"Alpha:    {data['alpha']} (range {data['alpha_range'][0]} to {data['alpha_range'][1]}) - {data['reason']}"
        )
        if data.get("checkpoints"):
            lines.append(f"          checkpoints: {data['checkpoints']}")
    if "interpretation" in data:
        lines.append(
            f"Score:    {data['score']:.4f} = size {data['size_term']:.4f} + accuracy {data['accuracy_term']:.4f}"
        )
        lines.append(f"          {data['interpretation']}")
        for row in data.get("ranking") or []:
            floor = " BELOW THE ACCURACY FLOOR" if row.get("meets_accuracy_floor") is False else ""
            lines.append(
                f"  #{row['rank']} {row['name']}: DS {row['score']:.4f} (size {row['size']}, accuracy "
                f"{row['accuracy']}){floor}"
            )
    if "findings" in data:
        for f in data["findings"]:
            lines.append(f"[{f['status']:>13}] {f['name']}: {f['diagnosis']}")
            for e in f["evidence"]:
                lines.append(f"                {e['metric']} = {e['value']} vs {e['threshold']} ({e['comparison']})")
            if f["status"] == "detected":
                lines.append(f"                fix: {f['fix']}")
            if f.get("source") and f["status"] != "not_evaluated":
                lines.append(f"                source: {f['source']}")
    if "gates" in data:
        lines.append(f"Gates: {data['passed']} pass, {data['failed']} fail, {data['unknown']} unknown")
        for g in data["gates"]:
            lines.append(
                f"  [{g['status']:>7}] {g['title']}: {g['reason']}"
                + (f" [source: {g['source']}]" if g.get("source") else "")
            )
    if "settings" in data and "teacher" in data:
        lines.append(f"Quick distill on {data['dataset']}: {data['summary']}")
        seed = (data.get("settings") or {}).get("seed", 0)
        logits_teacher = str((data.get("settings") or {}).get("teacher_source", "")).startswith(
            "given: precomputed logits"
        )
        for name in ("teacher", "scratch", "distilled"):
            m = data.get(name)
            if m:
                # the students' rows are the saved seed's models (the means over seeds are in the headline and below)
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
        comparison = data.get("comparison") or {}
        if len(comparison.get("pairs") or []) > 1:
            per_seed = "; ".join(
                f"seed {p['seed']} {p['scratch_accuracy']:.4f} -> {p['distilled_accuracy']:.4f} "
                f"({p['gain_points']:+.2f})"
                for p in comparison["pairs"]
            )
            lines.append(f"  per seed (scratch -> distilled): {per_seed}")
            if comparison.get("scratch_mean_accuracy") is not None:
                lines.append(
                    f"  mean over {len(comparison['pairs'])} seeds: scratch {comparison['scratch_mean_accuracy']:.4f}, "
                    f"distilled {comparison['distilled_mean_accuracy']:.4f} ({comparison['mean_gain_points']:+.2f} "
                    "points)"
                )
        for t in data.get("trials", []):  # scratch trials vary the learning rate, distilled ones T and the loss weight
            setting = (
                f"T={t['temperature']:g} w={t['kd_loss_weight']:g}"
                if t.get("temperature") is not None and t.get("kd_loss_weight") is not None
                else f"lr={t['learning_rate']:g}"
            )
            generation = f" generation {t['generation']}" if t.get("generation") is not None else ""
            chosen = "  <- selected" if t.get("selected") else ""
            lines.append(
                f"  trial {t['role']} seed {t['seed']} {setting}{generation}: val acc {t['val_accuracy']:.4f} "
                f"({t['epochs']} epochs){chosen}"
            )
        if data.get("plan"):
            p = data["plan"]
            teacher = f"share {p['teacher_share_s']:.0f} s" if p.get("teacher_share_s") is not None else "given or none"
            lines.append(
                f"  plan: teacher first ({teacher}), then {p['trials_per_side']} trial(s) per side x {p['seeds']} "
                f"seed(s) x {p['epochs']} epochs; cut: {'; '.join(p['cuts']) or 'nothing'}"
                + (f"; restored: {'; '.join(p['replanned'])}" if p.get("replanned") else "")
            )
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
    if "verdict" in data and "reason" in data:  # a route answer (a quick distill's verdict is words, shown above)
        target = data.get("skill") or data.get("boundary") or ""
        lines.append(f"Verdict:  {data['verdict']} {target}".rstrip() + f" - {data['reason']}")
        if data.get("skill"):
            lines.append(f"          installed: {data['installed']}; fallback: {data['fallback']}")
        elif data.get("fallback"):
            lines.append(f"          instead: {data['fallback']}")
        lines.append(f"          confidence: {data['confidence']}; decided by: {data['decided_by']}")
        if data.get("learned_reading"):
            lines.append(f"          learned reader: {data['learned_reading']}")
        if data.get("question"):
            lines.append(f"          ask the user: {data['question']}")
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
