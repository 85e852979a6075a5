"""SKILL.md and references/: spec-valid, links resolve, and every stated number agrees with the rule files."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from skill.rules import get_rules
from tests.npm_tools import SKILLS_INSTALLER, install

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "SKILL.md", *sorted((ROOT / "references").glob("*.md"))]


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _copy_skill(dest: Path) -> Path:
    folder = dest / "knowledge-distillation-deep"
    folder.mkdir(parents=True)
    shutil.copy(ROOT / "SKILL.md", folder / "SKILL.md")
    shutil.copytree(ROOT / "references", folder / "references")
    return folder


def _validate(folder: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("agentskills") or str(Path(sys.executable).parent / "agentskills")
    return subprocess.run([exe, "validate", str(folder)], capture_output=True, text=True, timeout=60)


def test_skill_validates_with_skills_ref(tmp_path):
    proc = _validate(_copy_skill(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Valid skill" in proc.stdout


def test_validator_rejects_a_broken_skill(tmp_path):
    folder = _copy_skill(tmp_path)
    text = _text(folder / "SKILL.md").replace("name: knowledge-distillation-deep", "name: Knowledge_Distillation", 1)
    (folder / "SKILL.md").write_text(text)
    assert _validate(folder).returncode != 0


def test_front_matter_and_length():
    text = _text(ROOT / "SKILL.md")
    front = yaml.safe_load(text.split("---")[1])
    assert set(front) <= {"name", "description", "license", "compatibility", "metadata", "allowed-tools"}
    assert front["name"] == "knowledge-distillation-deep"
    assert len(front["description"]) <= 1024 and "<" not in front["description"] and ">" not in front["description"]
    for trigger in ("phone", "temperature", "rare classes"):
        assert trigger in front["description"]
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in front["metadata"].items())
    assert len(text.splitlines()) < 500


def _slug(heading: str) -> str:
    return re.sub(r"[^a-z0-9 -]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    return {_slug(m) for m in re.findall(r"^#+ (.+)$", _text(path), flags=re.MULTILINE)}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_relative_links_resolve(doc):
    for target in re.findall(r"\]\(([^)]+)\)", _text(doc)):
        if target.startswith(("http://", "https://")):
            continue
        file, _, anchor = target.partition("#")
        path = (doc.parent / file).resolve() if file else doc
        assert path.is_file(), f"{doc.name}: broken link {target}"
        if anchor:
            assert anchor in _anchors(path), f"{doc.name}: no heading for #{anchor} in {path.name}"


def test_every_reference_is_linked_from_skill_md():
    skill = _text(ROOT / "SKILL.md")
    for ref in (ROOT / "references").glob("*.md"):
        assert f"references/{ref.name}" in skill, ref.name


def test_rule_references_point_at_real_sections():
    rules = get_rules()
    refs = set()

    def walk(node):
        if isinstance(node, (list, tuple)):
            for item in node:
                walk(item)
        elif hasattr(node, "items"):
            for key, value in node.items():
                if key == "references":
                    refs.update(value)
                else:
                    walk(value)

    for name in ("method", "topology", "alpha", "score", "failure_modes", "quality_gates"):
        walk(getattr(rules, name))
    assert refs
    for ref in refs:
        file, _, anchor = ref.partition("#")
        assert (ROOT / file).is_file(), ref
        if anchor:
            assert anchor in _anchors(ROOT / file), ref


def test_long_references_have_a_table_of_contents():
    for ref in (ROOT / "references").glob("*.md"):
        if len(_text(ref).splitlines()) > 300:
            assert "## Contents" in _text(ref), ref.name


# ---- the docs agree with the rules -------------------------------------------------------

R = get_rules()
_branch = {b["id"]: b for b in R.method["tree"]}
_alpha = {b["id"]: b for b in R.alpha["tree"]}
_modes = {k: v["thresholds"] for k, v in R.failure_modes["modes"].items()}
_bound = {b["id"]: b for b in R.boundaries["boundaries"]}
_gates = {g["id"]: g for g in R.quality_gates["gates"]}
_temps = R.method["methods"]["response"]["hyperparameters"]["temperature_range_by_task"]

NUM = r"(\d+(?:\.\d+)?)"


def _warn(rules, warning_id: str, field: str) -> float:
    """The value a rule-file warning compares `field` with."""
    warning = next(w for w in rules["warnings"] if w["id"] == warning_id)
    leaves = warning["when"].get("all", [warning["when"]])
    return next(c["value"] for c in leaves if c["field"] == field)
# (pattern, expected numbers, files that must state it)
CLAIMS = [
    (rf"similarity (?:is not )?above {NUM}", [_branch["response"]["when"]["value"]], ["SKILL.md", "methods.md"]),
    (rf"compression above {NUM}x", [_branch["cascade"]["when"]["value"]], ["SKILL.md", "methods.md"]),
    (rf"temperature {NUM} to {NUM} for classification", list(_temps["classification"]), ["SKILL.md", "methods.md"]),
    (rf"{NUM} to {NUM} for regression", list(_temps["regression"]), ["SKILL.md", "methods.md"]),
    (rf"confidence is above {NUM}|top probability is above {NUM}", [R.method["methods"]["cascade"]["hyperparameters"]["confidence_threshold"]], ["SKILL.md", "methods.md"]),
    (rf"keep T between {NUM} and {NUM}", list(R.method["small_student"]["temperature_range"]), ["SKILL.md"]),
    (rf"(?:edge|embedded)(?: or embedded)? deployment \| {NUM} to {NUM} \| {NUM}", [*_alpha["size_first"]["alpha_range"], _alpha["size_first"]["alpha"]], ["SKILL.md", "alpha-and-score.md"]),
    (rf"medical or financial \| {NUM} to {NUM} \| {NUM}", [*_alpha["accuracy_first"]["alpha_range"], _alpha["accuracy_first"]["alpha"]], ["SKILL.md", "alpha-and-score.md"]),
    (rf"\| {NUM} plus checkpoints \| {NUM}", [_alpha["dynamic_routing"]["alpha_range"][0], _alpha["dynamic_routing"]["alpha"]], ["SKILL.md", "alpha-and-score.md"]),
    (rf"\| {NUM} to {NUM} \| {NUM} \| balanced|otherwise \| {NUM} to {NUM} \| {NUM}", [*_alpha["balanced"]["alpha_range"], _alpha["balanced"]["alpha"]], ["SKILL.md", "alpha-and-score.md"]),
    (rf"spread[^.|]*? above {NUM}", [_modes["accuracy_mirage"]["max_per_class_spread"]], ["SKILL.md", "failure-modes.md"]),
    (rf"below {NUM} x overall", [_modes["accuracy_mirage"]["min_minority_to_overall_ratio"]], ["SKILL.md", "failure-modes.md"]),
    (rf"ECE (?:over|is more than) {NUM} x the teacher's and at least {NUM} above", [_modes["temperature_blindness"]["ece_ratio"], _modes["temperature_blindness"]["ece_margin"]], ["SKILL.md", "failure-modes.md"]),
    (rf"{NUM}(?:-bin| equal-width bins)", [_modes["temperature_blindness"]["ece_bins"]], ["SKILL.md", "failure-modes.md"]),
    (rf"at T between {NUM} and {NUM}", list(_modes["temperature_blindness"]["fix_temperature_range"]), ["SKILL.md", "failure-modes.md"]),
    (rf"less than {NUM}% (?:fewer parameters|\(relative\))", [_modes["capacity_cliff"]["max_param_reduction"] * 100], ["SKILL.md", "failure-modes.md"]),
    (rf"more than {NUM} accuracy|accuracy falls by more than {NUM}", [_modes["capacity_cliff"]["min_accuracy_drop"]], ["SKILL.md", "failure-modes.md"]),
    (rf"more than {NUM}% \(relative\) below", [_modes["bias_amplification"]["max_relative_parity_drop"] * 100], ["SKILL.md", "failure-modes.md"]),
    (rf"above {NUM}x compression", [_gates["cascade_evaluated"]["applies_when"]["value"]], ["SKILL.md", "quality-gates.md"]),
    (rf"under (?:about )?{NUM} parameters", [_bound["tiny_rule_based"]["when"]["value"]], ["SKILL.md", "boundaries.md"]),
    (rf"at most {NUM} samples \({NUM} values\)", [R.failure_modes["raw_limits"]["max_samples"], R.failure_modes["raw_limits"]["max_values"]], ["quick-distill.md"]),
    (rf"under {NUM} ms", [_bound["hard_real_time"]["when"]["value"]], ["SKILL.md", "boundaries.md"]),
    # numbers added by the review of the advice against the guidance (issue 9)
    (rf"default threshold (?:is|of) {NUM}", [R.method["methods"]["cascade"]["hyperparameters"]["confidence_threshold"]], ["worked-examples.md"]),
    (rf"planned temperature above {NUM}", [_warn(R.method, "planned_temperature_too_high_for_small_student", "planned_temperature")], ["SKILL.md"]),
    (rf"at {NUM} or less it warns of temperature blindness|temperature of {NUM} or less \(temperature blindness",
     [_modes["temperature_blindness"]["max_training_temperature_at_risk"]], ["SKILL.md", "methods.md"]),
    (rf"alpha of {NUM} or more|when alpha is {NUM} or more", [_warn(R.score, "alpha_looks_like_loss_weight", "alpha")], ["SKILL.md", "alpha-and-score.md"]),
    (rf"Every alpha the rules give lies between {NUM} and {NUM}", [min(x for b in R.alpha["tree"] for x in b["alpha_range"]),
     max(x for b in R.alpha["tree"] for x in b["alpha_range"])], ["alpha-and-score.md"]),
    (rf"keeps less than {NUM} of the\s+teacher's accuracy", [R.score["low_accuracy_share"]], ["alpha-and-score.md"]),
    (rf"more than {NUM} wider than the teacher's", [_modes["bias_amplification"]["max_group_accuracy_gap_increase"]], ["SKILL.md", "failure-modes.md"]),
    (rf"differ by more\s+than {NUM} at one size", [_modes["capacity_cliff"]["min_accuracy_drop"]], ["failure-modes.md"]),
    (rf"loses more than {NUM} accuracy more than the least-hurt", [_modes["bias_amplification"]["max_group_loss_spread"]], ["failure-modes.md"]),
    (rf"per-class accuracies by more than {NUM} \(rounding\)", [_modes["accuracy_mirage"]["overall_outside_classes_tolerance"]], ["failure-modes.md"]),
    (rf"more than {NUM} times the teacher's size", [R.score["max_size_ratio"]], ["alpha-and-score.md"]),
    # the release check (issue 21)
    *[(pattern, [next(c["value"] for c in R.release["generation"]["checks"] if c["id"] == check)], ["release-check.md"])
      for pattern, check in ((rf"at least {NUM} held-out tokens", "heldout_tokens"), (rf"teacher's is at most {NUM}", "perplexity_ratio"),
                             (rf"token KL at most {NUM}", "token_kl"), (rf"agreement of at least {NUM}", "greedy_agreement"))],
    (rf"{NUM} paired-bootstrap resamples, a {NUM}% interval", [R.release["baseline_comparison"]["resamples"],
     R.release["baseline_comparison"]["confidence"] * 100], ["release-check.md"]),
    (rf"sizes less than {NUM}% apart", [_modes["capacity_cliff"]["max_param_reduction"] * 100], ["release-check.md"]),
]


def _doc(name: str) -> str:
    return _text(ROOT / name) if name == "SKILL.md" else _text(ROOT / "references" / name)


@pytest.mark.parametrize("pattern, expected, files", CLAIMS, ids=[c[0][:40] for c in CLAIMS])
def test_docs_state_the_rule_numbers(pattern, expected, files):
    for name in files:
        matches = list(re.finditer(pattern.replace(" ", r"\s+"), _doc(name)))
        assert matches, f"{name} does not state {pattern!r}"
        for match in matches:
            found = [float(g) for g in match.groups() if g is not None]
            assert found == [float(e) for e in expected], f"{name}: {match.group(0)!r} disagrees with the rules {expected}"


def test_alpha_statements_anywhere_agree():
    """Every 'alpha X' or 'alpha range X to Y' in the docs is a value the alpha rules produce."""
    allowed = {float(b["alpha"]) for b in R.alpha["tree"]} | {float(x) for b in R.alpha["tree"] for x in b["alpha_range"]}
    for doc in DOCS:
        for match in re.finditer(r"alpha(?: range)? (0\.\d+)(?: to (0\.\d+))?", _text(doc)):
            for value in filter(None, match.groups()):
                assert float(value) in allowed, f"{doc.name}: {match.group(0)!r}"


def test_delegation_text_matches_route_data():
    boundaries_md = _doc("boundaries.md")
    skill_md = _doc("SKILL.md")
    for sibling in R.boundaries["siblings"]:
        assert f"`{sibling['skill']}`" in boundaries_md and f"`{sibling['skill']}`" in skill_md, sibling["skill"]
    for boundary in R.boundaries["boundaries"]:
        if boundary.get("skill"):
            assert f"`{boundary['skill']}`" in boundaries_md and f"`{boundary['skill']}`" in skill_md
    for folder in R.boundaries["skills_folders"]:
        assert f"`{folder}`" in boundaries_md
    named = set(re.findall(r"`([a-z]+(?:-[a-z]+)+)`", boundaries_md)) - {"knowledge-distillation-deep"}
    known = {s["skill"] for s in R.boundaries["siblings"]} | {b["skill"] for b in R.boundaries["boundaries"] if b.get("skill")}
    assert named <= known, named - known


def _clean_checkout(dest: Path) -> Path:
    """The files a user gets from cloning the repository (tracked or not ignored), without local build output."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True)
    for name in listed.stdout.splitlines():
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def test_installs_with_the_skills_installer(tmp_path):
    skills = install(SKILLS_INSTALLER, "skills")
    checkout = _clean_checkout(tmp_path / "knowledge-distillation-deep")
    project = tmp_path / "project"
    project.mkdir()
    proc = subprocess.run([str(skills), "add", str(checkout), "-a", "claude-code", "-y"], cwd=project, capture_output=True, text=True,
                          timeout=300, env={"HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin", "CI": "1", "DO_NOT_TRACK": "1", "DISABLE_TELEMETRY": "1"})
    installed = project / ".claude" / "skills" / "knowledge-distillation-deep"
    assert (installed / "SKILL.md").is_file(), proc.stdout + proc.stderr
    assert {p.name for p in (installed / "references").glob("*.md")} == {p.name for p in (ROOT / "references").glob("*.md")}
    assert (installed / "SKILL.md").read_text() == _text(ROOT / "SKILL.md")
    assert _validate(installed.resolve()).returncode == 0
    # SKILL.md tells the agent to `pip install .` from the installed folder: it must build there
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "wheel"), str(installed.resolve())],
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr


def test_small_student_warning_is_described_as_it_fires():
    """The rule fires on response-based at high compression with no planned temperature; SKILL.md must not say otherwise."""
    from skill.conditions import condition_fields
    from skill.models import RecommendMethodRequest
    from skill.recommend import recommend_method

    rule = next(w for w in R.method["warnings"] if w["id"] == "small_student_high_temperature")
    assert "planned_temperature" not in condition_fields(rule["when"])
    answer = recommend_method(RecommendMethodRequest(task_type="classification", task_similarity=0.9, compression_ratio=16))
    assert "small_student_high_temperature" in {w.id for w in answer.warnings}
    assert re.search(r"whether or not a\s+temperature is planned", _doc("SKILL.md"))


def test_routing_presents_the_structured_inputs_first_and_the_text_as_the_fallback():
    """SKILL.md's Route step and the route tool's description name every structured input before the user's words,
    and call the text the fallback (issue 19): an agent fills what it knows before the router reads words."""
    from skill.tool_specs import SPECS
    from skill.models import RouteRequest

    structured = [name for name in RouteRequest.model_fields if name != "request"]
    assert len(structured) >= 6
    route_step = next(line for line in _doc("SKILL.md").splitlines() if line.startswith("1. **Route**"))
    description = next(spec.description for spec in SPECS if spec.name == "kd_route_request")
    for text, words in ((route_step, "`request`"), (description, "user's words as request")):
        assert words in text and "fallback" in text.lower(), text
        late = [name for name in structured if not 0 <= text.find(name) < text.index(words)]
        assert not late, f"named after the text, or not at all: {late}"
