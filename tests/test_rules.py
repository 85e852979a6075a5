"""The rule files: validated at load, frozen, and holding exactly the numbers of the guidance."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from skill.rules import RULE_NAMES, RuleFileError, get_rules, load_rules_from, rules_dir


def test_all_rule_files_load_and_are_frozen():
    rules = get_rules()
    for name in RULE_NAMES:
        assert getattr(rules, name), name
    with pytest.raises(TypeError):
        rules.alpha["tree"][0]["alpha"] = 0.99  # type: ignore[index]


@pytest.mark.parametrize(
    "file, old, new, where",
    [
        ("alpha.yaml", "alpha: 0.7", "alpha: 1.7", "tree/0/alpha"),
        ("method.yaml", "op: gt, value: 0.8", "op: greater, value: 0.8", "tree/0/when"),
        ("quality_gates.yaml", "  - id: rollback_plan\n", "  - idx: rollback_plan\n", "gates/9"),
        ("failure_modes.yaml", "max_per_class_spread: 0.20", "max_per_class_spread: wide", "modes/accuracy_mirage/thresholds/max_per_class_spread"),
        ("boundaries.yaml", "skill: neural-architecture-search", "skill: Neural Architecture Search", "siblings/0/skill"),
        # thresholds added for the review of the advice against the guidance (issue 9)
        ("failure_modes.yaml", "max_group_accuracy_gap_increase: 0.05", "max_group_accuracy_gap_increase: 5", "modes/bias_amplification/thresholds/max_group_accuracy_gap_increase"),
        ("failure_modes.yaml", "min_accuracy_drop: 0.05", "min_accuracy_drop: -0.05", "modes/capacity_cliff/thresholds/min_accuracy_drop"),
        ("failure_modes.yaml", "inputs: {summary: [size_accuracy_curve]}", "inputs: {summary: []}", "modes/capacity_cliff/inputs/summary"),
        ("score.yaml", "low_accuracy_share: 0.9", "low_accuracy_share: 90", "low_accuracy_share"),
        ("score.yaml", "when: {field: alpha, op: ge, value: 0.85}", "when: {field: alpha, op: ge, value: 85}", "warnings/0/when/value"),
        ("topology.yaml", "  id: hierarchical\n  reason: The student", "  id: self\n  reason: The student", "unknown_with_smaller_student/id"),
        ("method.yaml", "(low, medium or high)?", "(low, medium or high)", "questions/abstraction_level"),
    ],
)
def test_broken_rule_file_is_rejected_with_file_and_path(tmp_path: Path, file: str, old: str, new: str, where: str):
    folder = tmp_path / "rules"
    shutil.copytree(rules_dir(), folder)
    text = (folder / file).read_text()
    assert old in text
    (folder / file).write_text(text.replace(old, new, 1))
    with pytest.raises(RuleFileError) as err:
        load_rules_from(folder)
    assert file in str(err.value)
    assert where in str(err.value)


def test_unparseable_yaml_names_the_file(tmp_path: Path):
    folder = tmp_path / "rules"
    shutil.copytree(rules_dir(), folder)
    (folder / "score.yaml").write_text("formula: [unclosed\n")
    with pytest.raises(RuleFileError, match="score.yaml"):
        load_rules_from(folder)


def _branch(tree, branch_id):
    return next(b for b in tree if b["id"] == branch_id)


def test_design_numbers_live_in_the_rules():
    """Every number of DESIGN.md section 4; changing one in the rules must fail here."""
    r = get_rules()
    assert [b["id"] for b in r.method["tree"]] == ["response", "feature", "cascade", "relation"]
    assert _branch(r.method["tree"], "response")["when"] == {"field": "task_similarity", "op": "gt", "value": 0.8}
    assert _branch(r.method["tree"], "cascade")["when"] == {"field": "compression_ratio", "op": "gt", "value": 10}
    hp = r.method["methods"]["response"]["hyperparameters"]["temperature_range_by_task"]
    assert list(hp["classification"]) == [3, 6] and list(hp["regression"]) == [1, 3]
    assert r.method["methods"]["cascade"]["hyperparameters"]["confidence_threshold"] == 0.9
    assert r.method["methods"]["response"]["hyperparameters"]["default_temperature"] == 4
    assert r.method["methods"]["response"]["hyperparameters"]["kd_loss_weight"] == 0.9
    assert list(r.method["small_student"]["temperature_range"]) == [2.5, 4]
    assert [b["id"] for b in r.topology["tree"]] == ["hierarchical", "ensemble", "online", "self"]
    alpha = {b["id"]: (list(b["alpha_range"]), b["alpha"]) for b in r.alpha["tree"]}
    assert alpha == {
        "size_first": ([0.6, 0.8], 0.7),
        "accuracy_first": ([0.1, 0.3], 0.2),
        "dynamic_routing": ([0.5, 0.5], 0.5),
        "balanced": ([0.4, 0.6], 0.5),
    }
    modes = r.failure_modes["modes"]
    assert modes["accuracy_mirage"]["thresholds"] == {"high_average_accuracy": 0.9, "max_per_class_spread": 0.2, "min_minority_to_overall_ratio": 0.7,
                                                      "overall_outside_classes_tolerance": 0.01}
    assert modes["temperature_blindness"]["thresholds"]["ece_bins"] == 15
    assert list(modes["temperature_blindness"]["thresholds"]["fix_temperature_range"]) == [3, 20]
    assert modes["capacity_cliff"]["thresholds"] == {"max_param_reduction": 0.1, "min_accuracy_drop": 0.05}
    assert modes["bias_amplification"]["thresholds"] == {"max_relative_parity_drop": 0.1, "max_group_accuracy_gap_increase": 0.05,
                                                         "max_group_loss_spread": 0.05}
    assert len(r.quality_gates["gates"]) == 10
    cascade_gate = next(g for g in r.quality_gates["gates"] if g["id"] == "cascade_evaluated")
    assert cascade_gate["applies_when"]["value"] == 5
    boundaries = {b["id"]: b for b in r.boundaries["boundaries"]}
    assert boundaries["tiny_rule_based"]["when"]["value"] == 1000
    assert boundaries["hard_real_time"]["when"]["value"] == 10
    assert boundaries["interpretability_first"]["skill"] == "interpretable-models"
    assert boundaries["hard_real_time"]["skill"] == "hardware-acceleration"
    assert [s["skill"] for s in r.boundaries["siblings"]] == [
        "neural-architecture-search",
        "model-deployment-optimization",
        "explainable-ai-design",
        "distributed-learning-coordination",
        "adversarial-defense-strategies",
    ]
    assert r.score["example"]["score"] == pytest.approx(0.05575)


def test_validation_is_remembered_only_for_the_exact_bytes(tmp_path: Path):
    """A rule set that passed validation is not re-validated (jsonschema is not even imported) until a byte changes."""
    import os
    import subprocess
    import sys

    folder = tmp_path / "rules"
    shutil.copytree(rules_dir(), folder)
    probe = (
        "import sys; from pathlib import Path; from skill.rules import load_rules_from; "
        f"load_rules_from(Path({str(folder)!r})); print('jsonschema' in sys.modules)"
    )
    env = {**os.environ, "KD_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("KD_RULES_CACHE", None)
    run = lambda: subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)  # noqa: E731
    assert run().stdout.strip() == "True"  # first load validates
    assert len(list((tmp_path / "cache").iterdir())) == 1
    assert run().stdout.strip() == "False"  # same bytes: remembered
    text = (folder / "alpha.yaml").read_text()
    (folder / "alpha.yaml").write_text(text.replace("alpha: 0.7", "alpha: 7.0", 1))
    broken = run()
    assert broken.returncode != 0 and "alpha.yaml" in broken.stderr and "tree/0/alpha" in broken.stderr
    env["KD_RULES_CACHE"] = "off"
    (folder / "alpha.yaml").write_text(text)
    assert run().stdout.strip() == "True"  # caching off: always validated


# ---- the routing lexicon (issue 19): word lists in skill/rules/lexicon/, put into boundaries.yaml at load ----------

LEXICON = rules_dir() / "lexicon"


@pytest.mark.parametrize(
    "file, old, new, where",
    [
        # each list is checked by the definition boundaries.schema.json gives it, naming the lexicon file
        ("lexicon/typos.yaml", "    - distillation\n", "    - Distillation\n", "reading/typo_vocabulary/0"),
        ("lexicon/numbers.yaml", '    "ms": 1\n', '    "ms": fast\n', "numbers/latency_units/ms"),
        ("lexicon/negation.yaml", "  negation_cues:\n", "  negation_cue:\n", "negation_cue"),  # a list boundaries.yaml does not read
        ("lexicon/siblings.yaml", "  neural-architecture-search:\n    search:\n", "  neural-architecture-search:\n    searching:\n",
         "terms/neural-architecture-search/searching"),  # words for a group that does not exist
        ("lexicon/distillation.yaml", "  budget:\n    budget:\n", "  budgets:\n    budget:\n", "terms/budgets/budget"),
        ("lexicon/clauses.yaml", '  step_cues:\n    - "then"\n    - "and then"\n    - "after that"\n', "  step_cues: []\n", "reading/step_cues"),
    ],
)
def test_a_broken_lexicon_file_is_rejected_with_file_and_path(tmp_path: Path, file: str, old: str, new: str, where: str):
    folder = tmp_path / "rules"
    shutil.copytree(rules_dir(), folder)
    text = (folder / file).read_text(encoding="utf-8")
    assert old in text
    (folder / file).write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(RuleFileError) as err:
        load_rules_from(folder)
    assert file in str(err.value) and where in str(err.value), str(err.value)


def test_a_word_list_set_twice_or_a_group_without_words_is_an_error(tmp_path: Path):
    folder = tmp_path / "rules"
    shutil.copytree(rules_dir(), folder)
    shutil.copy(folder / "lexicon" / "typos.yaml", folder / "lexicon" / "typos_again.yaml")
    with pytest.raises(RuleFileError, match="typos_again.yaml: at reading/typo_vocabulary: set twice"):
        load_rules_from(folder)
    (folder / "lexicon" / "typos_again.yaml").unlink()
    siblings = folder / "lexicon" / "siblings.yaml"
    text = siblings.read_text(encoding="utf-8")
    start = text.index("    perturbation:\n")
    siblings.write_text(text[:start], encoding="utf-8")  # the last group's words are gone
    with pytest.raises(RuleFileError, match="term groups without words: adversarial-defense-strategies/perturbation"):
        load_rules_from(folder)


def test_every_term_group_gets_its_words_from_the_lexicon_and_boundaries_yaml_holds_none():
    import yaml

    decisions = yaml.safe_load((rules_dir() / "boundaries.yaml").read_text(encoding="utf-8"))
    assert "patterns" not in (rules_dir() / "boundaries.yaml").read_text(encoding="utf-8")
    rules = get_rules().boundaries
    groups = [*rules["in_scope"]["groups"], rules["budget"]]
    groups += [g for owner in (*rules["boundaries"], *rules["siblings"]) for g in owner.get("groups", ())]
    assert len(groups) >= 20 and all(len(g["patterns"]) >= 1 for g in groups)
    lexicon = [yaml.safe_load(f.read_text(encoding="utf-8")) for f in LEXICON.glob("*.yaml")]
    lexicon_lists = {k for words in lexicon for section in ("reading", "numbers") for k in words.get(section, {})}
    assert lexicon_lists and not lexicon_lists & (set(decisions["reading"]) | set(decisions["numbers"]))
    assert lexicon_lists <= set(rules["reading"]) | set(rules["numbers"])


def test_the_routing_rules_read_as_text_one_entry_per_line():
    """No line over 200 characters; every word list in block form, one entry per line (a long pattern may continue
    on the next line after a backslash, which YAML joins with nothing between)."""
    import yaml

    files = [rules_dir() / "boundaries.yaml", *sorted(LEXICON.glob("*.yaml"))]
    assert len(files) >= 6
    for file in files:
        text = file.read_text(encoding="utf-8")
        long = [n for n, line in enumerate(text.splitlines(), 1) if len(line) > 200]
        assert not long, f"{file.name}: lines over 200 characters: {long}"
    for file in files[1:]:
        root = yaml.compose(file.read_text(encoding="utf-8"))
        for _, section in root.value:
            for key, value in section.value:
                # a term file maps owner -> group id -> list; the others name a list (or a table of units) directly
                terms = file.stem in ("distillation", "not_for", "siblings")
                for node in [v for _, v in value.value] if terms else [value]:
                    assert not node.flow_style, f"{file.name}: {key.value} is written inline; list one entry per line"


def test_the_lexicon_files_are_readable_as_rule_files_too():
    """kd://rules/<name> serves rule_file_text: with the words out of boundaries.yaml, each lexicon file is served as
    lexicon.<topic>, and an unknown name lists them."""
    from skill.rules import rule_file_text

    assert "terms:" in rule_file_text("lexicon.siblings") and "negation_cues:" in rule_file_text("lexicon.negation")
    with pytest.raises(KeyError, match="lexicon.typos"):
        rule_file_text("lexicon.nope")


def test_the_method_ids_the_models_accept_are_the_rules_methods():
    """MethodId (the recommendation's id and the export's method) lists exactly the methods the rules define: a
    method added to the rules but not to the models (or the reverse) would be refused, or accepted with no rule."""
    import typing

    from skill.models import MethodId
    from skill.rules import get_rules

    rules = get_rules()
    assert set(typing.get_args(MethodId)) == set(rules.method["methods"]) | set(rules.llm_method["methods"])
