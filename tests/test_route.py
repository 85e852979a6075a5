"""Routing: in scope, a sibling skill, or a not-for boundary; and whether the sibling is installed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from skill.models import RouteRequest
from skill.routing import route_request
from skill.rules import get_rules


@pytest.mark.parametrize(
    "text, kwargs, verdict, target",
    [
        ("Shrink my 800 MB BERT to fit a phone", {}, "in_scope", None),
        ("Why is my distilled model worse on rare classes?", {}, "in_scope", None),
        ("Which distillation temperature should I use?", {}, "in_scope", None),
        ("Quantize my model to int8 and export it to TensorRT", {}, "delegate", "model-deployment-optimization"),
        ("Run a neural architecture search for the best architecture search space", {}, "delegate", "neural-architecture-search"),
        ("Explain the model's predictions with SHAP", {}, "delegate", "explainable-ai-design"),
        ("Set up federated training across devices", {}, "delegate", "distributed-learning-coordination"),
        ("Make it robust to attacks, PGD and FGSM", {}, "delegate", "adversarial-defense-strategies"),
        ("I need an interpretable model for the regulator", {}, "delegate", "interpretable-models"),
        ("compress my detector", {"latency_budget_ms": 5}, "delegate", "hardware-acceleration"),
        ("compress my detector", {"latency_budget_ms": 10}, "in_scope", None),  # exactly 10 ms is not under 10
        ("distil my rule engine", {"model_params": 500}, "out_of_scope", None),
        ("distil my rule engine", {"model_params": 1000}, "in_scope", None),
        ("It's just a prototype, should I distill it?", {}, "out_of_scope", None),
        ("Bake a sourdough loaf", {}, "out_of_scope", None),
    ],
)
def test_routing_table(text, kwargs, verdict, target):
    answer = route_request(RouteRequest(request=text, **kwargs))
    assert answer.verdict == verdict, answer.reason
    assert answer.skill == target
    if verdict == "delegate":
        assert answer.fallback and answer.installed is False


def test_distill_request_keeps_scope_but_lists_the_sibling():
    answer = route_request(RouteRequest(request="Distill BERT, then quantize to int8 for the phone"))
    assert answer.verdict == "in_scope"
    assert [d.skill for d in answer.delegations] == ["model-deployment-optimization"]
    assert answer.delegations[0].fallback


def test_installed_sibling_is_found(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    skill_md = tmp_path / ".claude" / "skills" / "model-deployment-optimization" / "SKILL.md"
    skill_md.parent.mkdir(parents=True)
    skill_md.write_text("---\nname: model-deployment-optimization\n---\n")
    answer = route_request(RouteRequest(request="quantize to int8 with onnx"))
    assert answer.installed is True
    assert Path(answer.installed_path).resolve() == skill_md.resolve()


def test_home_skills_folder_is_searched(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    skill_md = tmp_path / ".agents" / "skills" / "explainable-ai-design" / "SKILL.md"
    skill_md.parent.mkdir(parents=True)
    skill_md.write_text("x")
    assert route_request(RouteRequest(request="explain the model with SHAP")).installed is True


def test_every_sibling_has_a_fallback_and_the_request_is_bounded():
    assert all(s["fallback"] for s in get_rules().boundaries["siblings"])
    with pytest.raises(ValueError, match="request"):
        RouteRequest(request="x" * 4001)


# ---- routing by intent (issue 9): each case was answered wrongly by the keyword router --------------


@pytest.mark.parametrize(
    "text, verdict, target",
    [
        # a negated or contrasted boundary word does not decide
        ("This isn't a prototype any more: shrink our production classifier to 30 MB", "in_scope", None),
        ("lots of GPUs for training, but the watch app needs a 5 MB model", "in_scope", None),
        ("no latency limit, but it must fit in 40 MB", "in_scope", None),
        # word boundaries: "shape" is not SHAP
        ("the input shape is 1x28x28, how do I distil the CNN into a 2-layer MLP?", "in_scope", None),
        # a distillation word that only describes the object does not pull a sibling's work here
        ("Quantise my already-distilled student to int8 for the Pixel NPU", "delegate", "model-deployment-optimization"),
        ("Produce SHAP values for the student model", "delegate", "explainable-ai-design"),
        ("make the student robust to PGD", "delegate", "adversarial-defense-strategies"),
        # our words outside machine learning
        ("Compress these backups with gzip", "out_of_scope", None),
        ("the teacher wants the students to write essays", "out_of_scope", None),
        ("what temperature for distilling whisky", "out_of_scope", None),
        # numbers in the text feed the numeric boundaries
        ("shrink the detector, it has to stay under 5 ms per frame", "delegate", "hardware-acceleration"),
        # with no machine-learning word, a lone goal is a guess, not evidence
        ("shrink my jeans back to size", "out_of_scope", None),
        ("Can you help me shrink it?", "out_of_scope", None),
        ("a 400-parameter model runs our thermostat, compress it?", "out_of_scope", None),
        # negated sibling work
        ("I don't need SHAP or anything like that, I just want the model 5x smaller", "in_scope", None),
        ("we don't want to distil anything, just quantise the llama to 4 bit and serve it", "delegate", "model-deployment-optimization"),
        # a step put off ("distil later") is not what is asked now; a later step ("then quantise") weighs less
        ("we'll distill later; right now we only need the ONNX export to work", "delegate", "model-deployment-optimization"),
        ("Minitron-style: prune our 15B down and then distil it back", "in_scope", None),
        ("after distillation, the team wants SHAP explanations of the student's decisions", "delegate", "explainable-ai-design"),
        ("we'd distil it but first we need SHAP explanations for the audit of the current model", "delegate", "explainable-ai-design"),
        ("Federated learning is out of scope for now; we just want a centrally trained small student", "in_scope", None),
        # counts written as words
        ("my model is y = 3x + 2 basically, two parameters. distill?", "out_of_scope", None),
        # LLM distillation is ours, LLM quantisation and serving are the deployment sibling's (issue 14)
        ("distil our 70B model into an 8B one for the chatbot", "in_scope", None),
        ("serve our distilled 8B with vLLM on 2 A100s", "delegate", "model-deployment-optimization"),
        # a number alone does not take a sibling's explicit work
        ("NAS over the student's depth, width and resolution for a 2 ms target on GPU", "delegate", "neural-architecture-search"),
    ],
)
def test_routing_by_intent(text, verdict, target):
    answer = route_request(RouteRequest(request=text))
    assert (answer.verdict, answer.skill) == (verdict, target), answer.decided_by


def test_out_of_scope_names_the_boundary_and_the_fallback():
    answer = route_request(RouteRequest(request="Compress these backups with gzip"))
    assert answer.boundary == "not_ml" and answer.fallback and answer.confidence == "high"
    tiny = route_request(RouteRequest(request="a 400-parameter model runs our thermostat, compress it?"))
    assert tiny.boundary == "tiny_rule_based"
    assert "model_params 400 (from the text)" in tiny.matched
    assert any(e.field == "model_params" and e.value == 400 and e.result == "true" for e in tiny.rule_trace)
    given = route_request(RouteRequest(request="compress my detector", latency_budget_ms=5))
    assert "latency_budget_ms 5 (given)" in given.matched and given.skill == "hardware-acceleration"


def test_negated_and_descriptive_words_are_shown_in_the_evidence():
    answer = route_request(RouteRequest(request="I don't need SHAP, I just want the model 5x smaller"))
    evidence = {i.intent: i for i in answer.intents}
    assert evidence["explainable-ai-design"].score == 0
    assert any("negated" in e and "n't" in e for e in evidence["explainable-ai-design"].evidence)
    whisky = route_request(RouteRequest(request="what temperature for distilling whisky"))
    assert all("not_ml" in e for i in whisky.intents for e in i.evidence)


def test_a_true_mix_stays_in_scope_and_lists_the_sibling():
    answer = route_request(RouteRequest(request="Plan to shrink our 13B summarizer to 3B, then quantize to 4-bit for serving"))
    assert answer.verdict == "in_scope"
    assert [d.skill for d in answer.delegations] == ["model-deployment-optimization"]


@pytest.mark.parametrize(
    "text, budget_ms",
    [
        ("3ms p99 for the ad ranking model", 3),
        ("the student model takes 12 ms, the spec says 7 ms", 7),  # the measured 12 ms is not the budget
        ("big model takes 1.2 s, our budget is 200 ms server side", 200),
        ("the policy network has to run in under 0.8 ms", 0.8),
        ("4ms hard deadline per frame, we're at 20ms now", 4),
        ("inference must take no more than 6 ms on the controller", 6),  # a bound, not a negation
        ("the latency target is 50 ms, not 5 ms", 50),  # a negated number is not the budget
    ],
)
def test_latency_budgets_are_read_from_the_text(text, budget_ms):
    answer = route_request(RouteRequest(request=text))
    assert f"latency_budget_ms {budget_ms:g} (from the text)" in answer.matched


def test_a_measured_latency_is_not_a_budget():
    answer = route_request(RouteRequest(request="the teacher takes 3 ms on the GPU, the student will run on a phone with a 50 MB limit"))
    assert answer.verdict == "in_scope", answer.decided_by


# ---- structured inputs from the calling agent take precedence over the text ------------------------


@pytest.mark.parametrize(
    "text, kwargs, verdict, target, boundary",
    [
        ("make it smaller for the phone", {"primary_goal": "deploy_or_quantize"}, "delegate", "model-deployment-optimization", None),
        ("Quantise my already-distilled student to int8", {"primary_goal": "distill"}, "in_scope", None, None),
        ("distil the model", {"primary_goal": "distill", "latency_budget_ms": 4}, "delegate", "hardware-acceleration", "hard_real_time"),
        ("distil the model", {"primary_goal": "distill", "is_prototype": True}, "out_of_scope", None, "prototype_without_requirements"),
        ("distil the model", {"primary_goal": "distill", "is_prototype": True, "has_size_or_latency_budget": True}, "in_scope", None, None),
        ("just a prototype, should I distil the model?", {"has_size_or_latency_budget": True}, "in_scope", None, None),
        ("shrink our classifier", {"is_prototype": True}, "out_of_scope", None, "prototype_without_requirements"),
        ("distil our teacher into a student", {"is_ml_model": False}, "out_of_scope", None, "not_ml"),
        ("shrink the whisky classifier images", {"is_ml_model": True}, "in_scope", None, None),  # the agent settles the sense
        ("a 400-parameter model, compress it with KD", {"model_params": 5000}, "in_scope", None, None),
        ("help me with this", {"primary_goal": "other"}, "out_of_scope", None, "not_ml"),
        ("help me with this", {"primary_goal": "interpretable_model"}, "delegate", "interpretable-models", "interpretability_first"),
    ],
)
def test_structured_inputs_take_precedence(text, kwargs, verdict, target, boundary):
    answer = route_request(RouteRequest(request=text, **kwargs))
    assert (answer.verdict, answer.skill, answer.boundary) == (verdict, target, boundary), answer.decided_by
    assert answer.confidence == "high"


def test_primary_goal_lists_exactly_the_goals_in_the_rules():
    rules = get_rules().boundaries
    goals = {"distill"} | {s["goal"] for s in rules["siblings"]} | {b["goal"] for b in rules["boundaries"]}
    field = RouteRequest.model_fields["primary_goal"]
    assert set(RouteRequest.model_json_schema()["properties"]["primary_goal"]["anyOf"][0]["enum"]) == goals
    described = set(re.findall(r"\b([a-z]+(?:_[a-z]+)*) \(|; ([a-z_]+)", field.description or ""))
    for goal in goals:
        assert goal in (field.description or ""), goal
    assert described
    with pytest.raises(ValueError, match="primary_goal"):
        RouteRequest(request="x", primary_goal="quantise")


# ---- saying when the text leaves it open ----------------------------------------------------------


@pytest.mark.parametrize(
    "text, confidence",
    [
        ("Which distillation temperature should I use?", "low"),  # no word says whether this is machine learning
        ("help me with my model", "low"),  # a model, but nothing asked of it
        ("no latency limit, but it must fit in 40 MB", "low"),  # in scope, but nothing says it is a model
        ("my student visa expires next month", "high"),  # a person: a non-ML word says so
        ("the student is doing fine", "low"),  # a person or a model? nothing says
        ("Distil our 800 MB BERT into a 50 MB student for the phone", "high"),
        ("Bake a sourdough loaf", "high"),
    ],
)
def test_confidence_and_the_question_to_ask(text, confidence):
    answer = route_request(RouteRequest(request=text))
    assert answer.confidence == confidence, answer.decided_by
    assert (answer.question is not None) == (confidence != "high")


def test_every_pattern_compiles_and_every_goal_is_unique():
    rules = get_rules().boundaries
    groups = list(rules["in_scope"]["groups"]) + [rules["budget"]]
    groups += [g for b in rules["boundaries"] for g in b.get("groups", [])] + [g for s in rules["siblings"] for g in s["groups"]]
    reading = rules["reading"]
    lists = [g["patterns"] for g in groups] + [reading[k] for k in ("contrast_cues", "step_cues", "deferral_cues", "negation_cues", "dismissal_cues", "bound_phrases", "ml_context", "ml_nouns", "model_names", "non_ml_context", "object_determiners", "weak_non_ml_context", "current_cues", "budget_cues")]
    for patterns in lists:
        for pattern in patterns:
            re.compile(pattern)
    re.compile(reading["phrase_breaks"]), re.compile(reading["sentence_breaks"])
    goals = [s["goal"] for s in rules["siblings"]] + [b["goal"] for b in rules["boundaries"]]
    assert len(goals) == len(set(goals)) and "distill" not in goals


# ---- the docs say what the rules do ---------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]


def test_boundaries_doc_states_the_reading_numbers():
    rules = get_rules().boundaries
    reading = rules["reading"]
    doc = " ".join((ROOT / "references" / "boundaries.md").read_text(encoding="utf-8").split())
    words = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}
    assert f"up to {words[reading['negation_window']]} words before a term" in doc
    assert f"weighs {reading['contrast_weight']:g} times" in doc
    assert "weighs half" in doc and reading["later_step_weight"] == 0.5
    assert f"less than {rules['close_margin']:g} points ahead" in doc
    learned = rules["learned_reader"]
    assert f"with probability at least {learned['override_probability']:g};" in doc
    assert f"the answer is `high` from {learned['confident_probability']:g} up" in doc
    assert f"unless its reading is at least {learned['confident_probability']:g} sure" in doc


def test_skill_md_tells_the_agent_to_fill_the_inputs_and_ask_before_dropping():
    skill_md = " ".join((ROOT / "SKILL.md").read_text(encoding="utf-8").split())
    doc = (ROOT / "references" / "boundaries.md").read_text(encoding="utf-8")
    rules = get_rules().boundaries
    for goal in ["distill", *(s["goal"] for s in rules["siblings"]), *(b["goal"] for b in rules["boundaries"])]:
        assert f"`{goal}`" in skill_md and f"`{goal}`" in doc, goal
    for name in ("is_ml_model", "has_size_or_latency_budget", "is_prototype"):
        assert f"`{name}`" in skill_md and f"`{name}`" in doc
    assert "Never drop the task silently" in skill_md and "ask the user before dropping the task" in skill_md
    assert "Never refuse silently" in doc


def test_tool_description_tells_the_agent_to_fill_the_inputs():
    from skill.tool_specs import SPECS

    spec = next(s for s in SPECS if s.name == "kd_route_request")
    for name in ("primary_goal", "is_ml_model", "has_size_or_latency_budget", "is_prototype"):
        assert name in spec.description
    assert "ask before dropping" in spec.description


def test_plan_prompt_asks_before_dropping_a_delegated_task():
    from skill.workflow import plan_distillation

    text = plan_distillation("800 MB BERT sentiment")
    assert "never drop the task silently" in text and "primary_goal" in text and "ask the returned question" in text


@pytest.mark.parametrize(
    "text, verdict, target",
    [
        # everyday words vote against machine learning only while nothing names a model
        ("we need about 30x compression of the satellite image segmenter for on-board use", "in_scope", None),
        ("compress these images for the website", "out_of_scope", "not_ml"),
        ("the model has to run inside a 20MB WASM bundle", "in_scope", None),
        ("how do I make our React bundle smaller? it's 4 MB", "out_of_scope", "not_ml"),
        ("compress the images for our website before the classifier sees them", "out_of_scope", "not_ml"),
        ("the distillation recipe for our 7B model, please", "in_scope", None),
        # a model family or an ML noun is context enough
        ("gemma 27b is too slow, we want the small one to learn from it", "in_scope", None),
        # a non-ML phrase that contains an ML word overrides it
        ("Which car model has the smallest turning circle?", "out_of_scope", "not_ml"),
        ("teacher training workshop: distill the curriculum into one slide", "out_of_scope", "not_ml"),
        # two model sizes compared: a capacity question
        ("60M params -> 91.5%, 57M -> 84%: why such a drop?", "in_scope", None),
        ("we raised $5M and $2M, where do we stand?", "out_of_scope", "not_ml"),
        # training on a larger model's outputs is sequence-level distillation
        ("Train a small LLM on GPT-4 outputs", "in_scope", None),
        ("fine-tune on the survey responses from our customers", "out_of_scope", "not_ml"),
        # a target device supports deployment work as much as distillation
        ("our segmentation model is slow on the Snapdragon; should we use the Hexagon NPU through QNN?", "delegate", "model-deployment-optimization"),
        # a number of sites is not a number of rules; an app is not a reason to doubt a model
        ("the student model needs federated training across our 12 branches", "delegate", "distributed-learning-coordination"),
        ("how do I make the app's startup faster? it's a React Native app", "out_of_scope", "not_ml"),
        # a word that only describes the object is not counted against a sibling
        ("can we use OpenVINO to speed up the student on Intel CPUs?", "delegate", "model-deployment-optimization"),
        # ratios state a size or speed goal
        ("cut the detector's memory by 75% please", "in_scope", None),
        ("we need the sentiment model 80% smaller for the app", "in_scope", None),
        ("cut the cloud bill by 30%", "out_of_scope", "not_ml"),
        # a corrected number is dropped
        ("a single network that scores in 2 ms... wait, 20 ms is fine", "in_scope", None),
        ("a single network that scores in 20 ms... wait, 2 ms", "delegate", "hardware-acceleration"),
    ],
)
def test_general_reading_rules(text, verdict, target):
    """The rules' own reading (numbers, corrections, negation scope, senses), without the learned reader."""
    answer = route_request(RouteRequest(request=text), learned=False)
    assert answer.verdict == verdict, (answer.decided_by, [i.evidence for i in answer.intents])
    assert (answer.skill if verdict == "delegate" else answer.boundary) == target


def test_route_work_per_request_stays_small():
    """Counted work, not a clock (issue 19: timings belong in bench/, and this limit once failed on a loaded machine):
    Python line events per routed request over every 20th corpus request. About 5,200 here; the limit is 3x that, so a
    change that makes routing do several times more work per request fails on any machine. bench/route_reader_value.py
    reports the time per request."""
    import sys

    import yaml

    data = Path(__file__).parent / "data"
    texts = [i["text"] for f in sorted(data.glob("route_corpus*.yaml")) for i in yaml.safe_load(f.read_text(encoding="utf-8"))][::20]
    route_request(RouteRequest(request=texts[0]))  # compile and cache the rules once
    events = 0

    def count(frame, event, arg):  # type: ignore[no-untyped-def]
        nonlocal events
        events += event == "line"
        return count

    sys.settrace(count)
    try:
        for text in texts:
            route_request(RouteRequest(request=text))
    finally:
        sys.settrace(None)
    per_request = events / len(texts)
    print(f"\n{per_request:.0f} line events per request over {len(texts)} requests")
    assert per_request < 16_000, per_request


@pytest.mark.parametrize(
    "text, verdict",
    [
        ("whats a good temprature for our bert classifier", "in_scope"),  # was not_ml: the word that decides was misspelt
        ("is knowlege destillation worth it for our resnet", "in_scope"),
        ("studnet is overconfidnet after kd, ece 0.2", "in_scope"),
    ],
)
def test_one_letter_slips_in_deciding_words_are_read(text, verdict):
    assert route_request(RouteRequest(request=text), learned=False).verdict == verdict


@pytest.mark.parametrize(
    "word, unchanged",
    [("distil", True), ("distiller", True), ("teaches", True), ("architectures", True), ("quantizes", True), ("temprature", False), ("distll", False)],
)
def test_mending_leaves_real_words_alone(word, unchanged):
    from skill.routing.typos import mend_typos

    reading = get_rules().boundaries["reading"]
    mended = mend_typos(word, reading["typo_vocabulary"], reading["typo_min_length"])
    assert (mended == word) is unchanged, mended


@pytest.mark.parametrize(
    "text, verdict, target",
    [
        # "rather than" takes its object; the clause after a new subject is the ask
        ("Rather than pruning I'd prefer distillation for the speech model, pruning kept wrecking the rare classes. Student target ~5M params.", "in_scope", None),
        ("Rather than distillation, we want to prune the detector for the Jetson.", "delegate", "model-deployment-optimization"),
        # a target that is not known yet is no budget
        ("Early exploration: we don't know yet whether this runs on a phone or a server, no accuracy target. Worth teacher-student training now?", "out_of_scope", "prototype_without_requirements"),
        ("Early exploration, but it will run on a phone with 40 MB free. Worth distilling now?", "in_scope", None),
        # with no budget, a firmly stated boundary answers a should-I-bother question over a sibling word in the background
        ("Idle L40S cards serve our single-task vision model; no memory or latency constraints. Teacher-student is best practice, should I bother?", "out_of_scope", "single_task_ample_compute"),
        # a sibling's work handed to someone else is not the ask
        ("adversarial robustness is handled by another team. my job: take the robust 300M classifier and produce a 30M one for the edge", "in_scope", None),
        # two model sizes describe the models; the work asked for is sharding
        ("FSDP config for a 3B student on 64 GPUs: the distillation code works on one node, but sharding the 70B teacher's forward across nodes OOMs.", "delegate", "distributed-learning-coordination"),
        # limits stated with a negation
        ("Need a custom CUDA kernel so inference never exceeds 2 ms for the trading model.", "delegate", "hardware-acceleration"),
        ("Somebody is hammering our API - we think they're distilling a copy of our model. How do we stop model extraction?", "delegate", "adversarial-defense-strategies"),
        ("tiny 2-layer perceptron, 640 weights total, on an 8-bit MCU. worth distilling?", "out_of_scope", "tiny_rule_based"),
        # only "rather than", "instead of", "other than", "without" stop at a new subject; "not" reaches the next clause
        ("I do not think we should distil it, just quantize it to int8 for the phone", "delegate", "model-deployment-optimization"),
        # a sibling's word with no model in sight is a guess
        ("shrink the Kubernetes cluster at night to save money", "out_of_scope", "not_ml"),
        # a hyphenated "-grade" is a level, not a school grade; alphas are loss weights
        ("For a medical imaging student, what alpha range applies, and should we add a cascade back to the radiologist-grade teacher?", "in_scope", None),
        ("For the shelf detector, rather than one student maybe several checkpoints at different sizes - how do I choose the alphas?", "in_scope", None),
    ],
)
def test_clause_scope_open_targets_and_background(text, verdict, target):
    """The rules' own reading, without the learned reader (which could otherwise hide a broken rule)."""
    answer = route_request(RouteRequest(request=text), learned=False)
    assert (answer.verdict, answer.skill or answer.boundary) == (verdict, target), answer.decided_by


RULES_MISS = "Nurses don't trust the sepsis-warning AI because it never says why it raised an alarm. Can it show the reasons behind each alert?"


def test_the_learned_reader_overrides_a_text_only_answer_and_says_so():
    rules_only = route_request(RouteRequest(request=RULES_MISS), learned=False)
    assert (rules_only.verdict, rules_only.boundary) == ("out_of_scope", "not_ml")  # the lexicon has no words for this
    answer = route_request(RouteRequest(request=RULES_MISS))
    assert (answer.verdict, answer.skill) == ("delegate", "explainable-ai-design")
    assert "learned reader" in answer.decided_by and "out_of_scope:not_ml" in answer.decided_by
    assert answer.learned_reading.startswith("delegate:explainable-ai-design")
    last = answer.rule_trace[-1]
    assert last.rule == "route.learned_reader" and last.result == "true" and last.value >= last.threshold
    assert answer.fallback and answer.delegations[0].skill == "explainable-ai-design"
    if answer.confidence != "high":
        assert "learned" not in answer.question and "explainable-ai-design" in answer.question


@pytest.mark.parametrize("given", [{"is_ml_model": True}, {"primary_goal": "distill"}, {"model_params": 5_000_000}])
def test_structured_inputs_are_never_overridden_by_the_reader(given):
    answer = route_request(RouteRequest(request=RULES_MISS, **given))
    assert answer.learned_reading is None and "learned reader" not in answer.decided_by
    assert all(t.rule != "route.learned_reader" for t in answer.rule_trace)


def test_an_agreeing_reader_leaves_the_rules_answer_and_is_shown():
    answer = route_request(RouteRequest(request="Shrink my 800 MB BERT to fit a phone"))
    assert answer.verdict == "in_scope" and "learned reader" not in answer.decided_by
    assert answer.learned_reading.startswith("in_scope")


def test_a_broken_model_file_is_a_clear_error(tmp_path: Path):
    import json

    from skill.routing.learned import LearnedReader, load_model_file
    from skill.rules import RuleFileError, rules_dir

    good = load_model_file(rules_dir() / get_rules().boundaries["learned_reader"]["file"])
    bad = tmp_path / "route_reader.json"
    bad.write_text(json.dumps({**good, "classes": ["in_scope", "maybe"]}))
    with pytest.raises(RuleFileError, match="route_reader.json: not a valid learned reader"):
        load_model_file(bad)
    with pytest.raises(RuleFileError, match="coef holds"):
        LearnedReader({**good, "intercept": good["intercept"] + [0.0], "classes": good["classes"] + ["out_of_scope:extra"]})


@pytest.mark.parametrize(
    "text, verdict, target",
    [
        # the rules saw the only distillation word and it is negated: the reader (which counts words) may not override
        ("Rather than distillation, we want to prune the detector for the Jetson.", "delegate", "model-deployment-optimization"),
        ("how hot should the still be when distilling gin", "out_of_scope", "not_ml"),
        # no distillation word at all: the reader needs a sure reading to call it in scope
        ("we raised $5M and $2M, where do we stand?", "out_of_scope", "not_ml"),
        # a number past a threshold is the rules' to read
        ("a single network that scores in 20 ms... wait, 2 ms", "delegate", "hardware-acceleration"),
        ("tiny 2-layer perceptron, 640 weights total, on an 8-bit MCU. worth distilling?", "out_of_scope", "tiny_rule_based"),
    ],
)
def test_what_the_reader_cannot_see_stays_with_the_rules(text, verdict, target):
    answer = route_request(RouteRequest(request=text))
    assert (answer.verdict, answer.skill if verdict == "delegate" else answer.boundary) == (verdict, target), answer.decided_by


def _model_copy():
    from skill.routing.learned import load_model_file
    from skill.rules import rules_dir

    return load_model_file(rules_dir() / get_rules().boundaries["learned_reader"]["file"])


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda m: {**m, "intercept": [float("nan")] + m["intercept"][1:]}, "not finite"),
        (lambda m: {**m, "coef": "not base64!"}, "not a valid learned reader"),
        (lambda m: {**m, "intercept": m["intercept"][:3]}, "intercept holds 3 values"),
        (lambda m: {**m, "features": [{**m["features"][0], "ngram_range": [2, 1]}] + m["features"][1:]}, "ngram_range 2 > 1"),
    ],
)
def test_a_bad_model_is_refused_when_loaded_not_when_a_request_comes(change, message):
    from skill.routing.learned import LearnedReader
    from skill.rules import RuleFileError

    with pytest.raises(RuleFileError, match=message):
        LearnedReader(change(_model_copy()))


def test_without_a_usable_model_the_rules_answer_and_say_so(tmp_path: Path, monkeypatch):
    import shutil

    import skill.routing.learned as learned
    from skill.rules import rules_dir

    shutil.copytree(rules_dir() / "schemas", tmp_path / "schemas")  # the schemas, but no model file
    monkeypatch.setattr(learned, "rules_dir", lambda: tmp_path)
    learned._load.cache_clear()
    try:
        answer = route_request(RouteRequest(request="distil our 1.3GB BERT into a 50MB student"))
        again = route_request(RouteRequest(request=RULES_MISS))
    finally:
        learned._load.cache_clear()
    assert answer.verdict == "in_scope" and answer.learned_reading is None
    assert [w.id for w in answer.warnings] == ["learned_reader_unavailable"] and "route_reader.json" in answer.warnings[0].message
    assert (again.verdict, again.boundary) == ("out_of_scope", "not_ml")  # the rules' own answer


def test_a_reader_with_labels_the_rules_do_not_know_is_not_believed():
    from skill.routing.learned import LearnedReader

    model = _model_copy()
    reader = LearnedReader({**model, "classes": [c.replace("not_ml", "car_models") for c in model["classes"]]})
    answer = route_request(RouteRequest(request=RULES_MISS), learned=reader)
    assert answer.warnings and "car_models" in answer.warnings[0].message
    assert answer.boundary == "not_ml"


@pytest.mark.parametrize(
    "text, verdict",
    [
        ("ｄｉｓｔｉｌ ｍｙ ＢＥＲＴ ｔｏ ２０ＭＢ", "in_scope"),  # full-width forms read as the plain letters
        ("Which iPhone model is the smallest and lightest?", "out_of_scope"),  # a product model, not an ML one
        ("must answer in 800 µs every time, hard limit", "delegate"),
    ],
)
def test_unicode_forms_and_product_models(text, verdict):
    assert route_request(RouteRequest(request=text), learned=False).verdict == verdict
    assert route_request(RouteRequest(request=text)).verdict == verdict
