"""Issue 20, second review: each defect an outside expert found in the language-model advice and the TRL export,
reproduced as a test (each failed before its fix). Numbers are recomputed from their definitions here."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest
import yaml

from skill.errors import InputError
from skill.models import RecommendMethodRequest
from skill.recommend import recommend_method
from skill.recommend_llm import human_bytes, logit_storage, memory_plan
from skill.rules import get_rules
from tests.test_export_trl import _export, _template_module, tiny  # noqa: F401  (tiny is a fixture)

LLM = get_rules().llm_method
SHARED = {"teacher_access": "logits", "same_tokenizer": True}
TEMPLATES = Path(__file__).resolve().parents[1] / "skill" / "export" / "templates"


def ask(task_type: str = "generation", **inputs):
    return recommend_method(RecommendMethodRequest(task_type=task_type, **inputs))


def ids(answer) -> set[str]:
    return {w.id for w in answer.warnings}


def text(answer) -> str:
    return " ".join([answer.method.reason, *(w.message for w in answer.warnings), str(answer.method.hyperparameters)])


# ---- 1: the memory plan counts the student's training state ----------------------------------------------


def test_memory_plan_fits_from_teacher_weights_plus_student_state():
    spec = LLM["memory"]
    plan = memory_plan(15_000_000_000, 8_000_000_000)
    total = 15e9 * spec["teacher_bytes_per_param"]["bf16"] + 8e9 * spec["student_training_bytes_per_param"]
    n = math.ceil(total / (spec["gpu_memory_gb"] * 1e9))
    assert n == 2 and plan["gpus_for_total"] == n and plan["total_bytes"] == int(total)
    assert "on one GPU" not in plan["choices"]["local"] and "does not fit" in plan["choices"]["local"]
    assert f"N >= {n}" in plan["choices"]["fsdp_or_zero3"] and "activations" in plan["note"]
    answer = ask(**{"teacher_access": "logits"}, student_source="prune_teacher", teacher_params=15_000_000_000,
                 student_params=8_000_000_000)
    assert "memory_does_not_fit_one_gpu" in ids(answer)
    small = memory_plan(7_000_000_000, 500_000_000)  # 14 + 8 GB: one GPU
    assert small["gpus_for_total"] == 1 and "on one GPU" in small["choices"]["local"]


def test_export_readme_sizes_memory_from_the_total(tiny, tmp_path, monkeypatch):
    import skill.export.trl as trl

    sizes = {str(tiny["teacher"]): 15_000_000_000, str(tiny["student"]): 8_000_000_000}
    monkeypatch.setattr(trl, "param_count", lambda model: sizes.get(model))  # 15B/8B models cannot be built here
    _export(tiny, tmp_path / "m", method="on_policy_kd")
    readme = (tmp_path / "m" / "README.md").read_text()
    assert "does not fit" in readme and "N >= 2" in readme and "activations" in readme


# ---- 2: a run that takes no optimizer step is not a pass ----------------------------------------------------


def test_export_refuses_fewer_training_rows_than_one_global_batch(tiny, tmp_path):
    with pytest.raises(InputError) as err:
        _export(tiny, tmp_path / "b", method="on_policy_kd", global_batch_size=8)  # 6 rows, 1 held out
    assert err.value.field == "global_batch_size" and "\n" not in str(err.value) and "5" in str(err.value)
    assert not (tmp_path / "b").exists()


def test_train_script_exits_non_zero_after_zero_steps():
    module = _template_module("trl_train")
    with pytest.raises(SystemExit) as err:
        module.require_steps(0, rows=6, global_batch=8)
    assert err.value.code not in (0, None) and "0 optimizer steps" in str(err.value.code)
    module.require_steps(2, rows=6, global_batch=2)


# ---- 3: one chat format on both sides; generation memory -------------------------------------------------


def test_teacher_and_student_see_the_same_chat_format(tiny):
    from transformers import AutoTokenizer

    module = _template_module("trl_train")
    tokenizer = AutoTokenizer.from_pretrained(tiny["student"])
    tokenizer.chat_template = "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{% endfor %}" \
                              "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    rows = [{"prompt": "two plus two", "completion": None, "prompt_messages": None, "answer": "4"},
            {"prompt": "hi", "completion": None, "prompt_messages": [{"role": "user", "content": "hi"}], "answer": None}]
    prompts = module.teacher_prompts(tokenizer, rows)
    assert prompts == ["<|user|>two plus two<|assistant|>", "<|user|>hi<|assistant|>"]
    examples = module.sft_examples([{**rows[0], "completion": "4"}])
    assert examples == [{"prompt": [{"role": "user", "content": "two plus two"}],
                         "completion": [{"role": "assistant", "content": "4"}]}]


def test_reasoning_readme_plans_generation_memory(tiny, tmp_path):
    _export(tiny, tmp_path / "r", method="reasoning_trace_kd", data=str(tiny["questions"]))
    readme = (tmp_path / "r" / "README.md").read_text()
    assert "training holds the student alone" not in readme
    # Llama config of the tiny teacher: 2 layers, 4 kv heads, head_dim 16, bf16 -> 2*2*4*16*2 = 512 bytes per token
    assert "KV cache" in readme and "512 bytes per token" in readme and "vLLM" in readme
    source = (TEMPLATES / "trl_train.py").read_text()
    assert 'device_map="auto"' in source
    answer = ask(purpose="reasoning", teacher_access="logits", same_tokenizer=True, teacher_params=32_000_000_000,
                 student_params=7_000_000_000)
    assert "generation_memory" in answer.method.hyperparameters and "KV cache" in answer.method.hyperparameters["generation_memory"]


# ---- 4: a draft is distilled at its serving temperature ---------------------------------------------------


def test_draft_distils_at_the_serving_temperature_on_the_stable_trainer(tiny, tmp_path):
    low = _export(tiny, tmp_path / "low", method="draft_model_kd", temperature=0.6)["distill"]
    assert (low["trainer"]["value"], low["loss_temperature"]["value"]) == ("DistillationTrainer", 0.6)
    greedy = _export(tiny, tmp_path / "g", method="draft_model_kd", engine_options={"serving_temperature": 0})["distill"]
    assert greedy["trainer"]["value"] == "DistillationTrainer"
    assert greedy["loss_temperature"]["value"] == LLM["methods"]["draft_model_kd"]["hyperparameters"]["greedy_serving_temperature"]
    with pytest.raises(InputError) as err:  # never a silent switch to GKDTrainer, whose loss runs at T = 1
        _export(tiny, tmp_path / "s", method="draft_model_kd", temperature=0.6, engine_options={"sampling_temperature": 1.0})
    assert err.value.field == "engine_options"
    answer = ask(**SHARED, purpose="draft_model", planned_temperature=0.6)
    assert not {"loss_temperature_outside_method", "classification_temperature_on_generation"} & ids(answer)
    assert "greedy" in str(answer.method.hyperparameters).lower()


# ---- 5: off-policy KD with a large teacher: an offline cache or a sharded teacher, not the server trainer --------


def test_off_policy_large_teacher_advice_matches_what_exports():
    answer = ask(**SHARED, teacher_params=70_000_000_000, student_params=8_000_000_000, on_policy_affordable=False,
                 dataset_tokens=10_000_000_000, vocab_size=128256)
    assert answer.method.id == "token_kd"
    said = " ".join(w.message for w in answer.warnings)
    assert "teacher_serving vllm_server" not in said and "on-policy only" in said  # never offered where export refuses
    assert "DistillKit" in said and "teacher_beyond_one_gpu_off_policy" in ids(answer)
    served = ask(**SHARED, teacher_params=70_000_000_000, student_params=8_000_000_000, on_policy_affordable=False,
                 teacher_serving="vllm_server")
    assert "teacher_on_vllm_server" not in ids(served) and "served_teacher_off_policy" in ids(served)


# ---- 6: vocab sizes that no padding explains ---------------------------------------------------------------


def test_same_tokenizer_claim_with_vocab_sizes_beyond_padding_is_flagged():
    answer = ask(**SHARED, student_vocab_size=32000, teacher_vocab_size=128256)
    assert "vocab_sizes_contradict_same_tokenizer" in ids(answer) and "vocab_size_mismatch" not in ids(answer)
    assert answer.method.id not in ("token_kd", "on_policy_kd")
    padded = ask(**SHARED, student_vocab_size=151936, teacher_vocab_size=152064)
    assert "vocab_size_mismatch" in ids(padded) and "vocab_sizes_contradict_same_tokenizer" not in ids(padded)
    larger = ask(**SHARED, vocab_size=151665, teacher_vocab_size=128256, student_vocab_size=128256)
    assert "tokenizer_larger_than_rows" in ids(larger)
    assert LLM["thresholds"]["vocab_padding_rows_at_most"] >= 152064 - 151936


# ---- 7: an API teacher of unknown size with a sized student ------------------------------------------------


def test_api_teacher_with_student_params_alone():
    answer = ask(teacher_access="outputs_only", teacher_serving="api", student_params=1_500_000_000, purpose="reasoning")
    assert "small_reasoning_student" in ids(answer)
    missing = {m.field for m in ask(teacher_access="outputs_only", purpose="reasoning").missing_inputs}
    assert "student_params" in missing
    with pytest.raises(ValueError):
        RecommendMethodRequest(task_type="generation", teacher_access="logits", student_params=1_000_000_000)


# ---- 8: heads on language models ---------------------------------------------------------------------------


def test_classification_head_temperature_and_regression_head_loss():
    head = ask("classification", language_model=True, planned_temperature=3)
    assert not {"classification_temperature_on_generation", "loss_temperature_outside_method"} & ids(head)
    regression = ask("regression", language_model=True)
    hp = regression.method.hyperparameters
    assert "MSE" in hp["loss"] and "KL" not in hp["loss"] and "temperature_range" not in hp


# ---- 9: the learning rate each trainer defaults to ----------------------------------------------------------


def _trl_default(relative: str, cls: str) -> float | None:
    import importlib.util

    root = Path(next(iter(importlib.util.find_spec("trl").submodule_search_locations)))
    tree = ast.parse((root / relative).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == cls:
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and getattr(item.target, "id", "") == "learning_rate":
                    for kw in item.value.keywords:
                        if kw.arg == "default":
                            return ast.literal_eval(kw.value)
    return None


def test_learning_rate_is_the_trainers_own_default(tiny, tmp_path):
    rates = LLM["trainer_learning_rates"]
    assert rates["DistillationTrainer"] == _trl_default("trainer/distillation_config.py", "DistillationConfig")
    assert rates["SFTTrainer"] == _trl_default("trainer/sft_config.py", "SFTConfig")
    train = _export(tiny, tmp_path / "on", method="on_policy_kd")["train"]
    assert train["learning_rate"]["value"] == rates["DistillationTrainer"] and "DistillationConfig" in train["learning_rate"]["evidence"]


# ---- 10: ZeRO-3 needs the training arguments before the models ---------------------------------------------


def test_training_arguments_exist_before_any_model_loads():
    """transformers' from_pretrained partitions at load (zero.Init) only when a live HfDeepSpeedConfig exists, which
    TrainingArguments.__post_init__ creates under `accelerate launch` with DeepSpeed: so every config is built first.
    Checked in every function of the recipe that loads a model for training (one builder per trainer)."""
    tree = ast.parse((TEMPLATES / "trl_train.py").read_text())

    def called(node: ast.AST, name: str) -> bool:
        return any(isinstance(n, ast.Call) and getattr(n.func, "id", getattr(n.func, "attr", None)) == name for n in ast.walk(node))

    # loads that are not for training: the teacher's one-process generation before SFT (unpartitioned on purpose:
    # generate needs whole weights) and the evaluation after training
    not_training = {"load_model", "complete_with_teacher", "write_evidence"}
    functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
    assert not_training <= {f.name for f in functions}  # the exemptions still name real functions
    checked, loaders = 0, set()
    for function in functions:
        if function.name in not_training:
            continue
        blocks = [function.body] + [b for n in ast.walk(function) if isinstance(n, ast.If) for b in (n.body, n.orelse)]
        for body in blocks:
            for i, statement in enumerate(body):
                if not isinstance(statement, ast.If) and called(statement, "load_model"):
                    assert any(called(earlier, "build_training_args") for earlier in body[:i]), statement.lineno
                    checked += 1
                    loaders.add(function.name)
    assert checked >= 3 and len(loaders) >= 3, loaders  # SFT, server, and the local-teacher trainers


# ---- 11: scratch students are not a TRL chat recipe ---------------------------------------------------------


def test_scratch_student_gets_no_chat_recipe_and_the_right_llama_citation():
    answer = ask(**SHARED, student_source="scratch", teacher_params=9_000_000_000, student_params=2_000_000_000)
    assert answer.next_steps == [] and "pre-training" in text(answer)
    assert "pruned" in answer.method.reason


# ---- 12: SFT answers carry no training memory plan or logit warnings ----------------------------------------


def test_sequence_answers_skip_teacher_training_memory_and_vocab_warning():
    answer = ask(**SHARED, purpose="reasoning", teacher_params=32_000_000_000, student_params=1_500_000_000,
                 student_vocab_size=151936, teacher_vocab_size=152064)
    assert "memory_plan" not in answer.method.hyperparameters and "vocab_size_mismatch" not in ids(answer)
    moe = ask(teacher_access="outputs_only", purpose="reasoning", teacher_params=671_000_000_000,
              teacher_active_params=37_000_000_000, student_params=7_000_000_000)
    assert "see hyperparameters.memory_plan" not in text(moe).lower() and "the memory plan uses" not in text(moe)


# ---- 13: a served target for a draft ------------------------------------------------------------------------


def test_served_draft_target_says_top1_and_suggests_forward_kl(tiny, tmp_path):
    _export(tiny, tmp_path / "d", method="draft_model_kd", engine_options={"teacher_server_url": "http://127.0.0.1:8000"})
    readme = (tmp_path / "d" / "README.md").read_text()
    assert "top-1" in readme and "beta 0" in readme


# ---- 14: max_length is honoured on the on-policy trainer ----------------------------------------------------


def test_on_policy_prompts_are_cut_to_max_length(tiny):
    from transformers import AutoTokenizer

    module = _template_module("trl_train")
    tokenizer = AutoTokenizer.from_pretrained(tiny["student"])
    tokenizer.chat_template = module.PLAIN_CHAT_TEMPLATE
    rows = [{"prompt": "the teacher explains the answer " * 20, "completion": None, "prompt_messages": None, "answer": None},
            {"prompt": "two plus two", "completion": None, "prompt_messages": None, "answer": None}]
    kept, dropped = module.fit_prompts(rows, tokenizer, max_prompt_tokens=16)
    assert dropped == 1 and kept == [rows[1]]


# ---- 15: the default verifier --------------------------------------------------------------------------------


@pytest.mark.parametrize("completion, answer, ok", [
    ("The capital is Paris.", "Paris", True), ("so \\boxed{\\frac{1}{2}}", "1/2", True), ("it is 0.50", "0.5", True),
    ("the answer is 1,024.", "1024", True), ("the answer is 5", "4", False), ("The capital is Lyon.", "Paris", False),
    ("\\boxed{0.5}", "1/2", True), ("x = 3 then 12", "12", True)])
def test_verifier_compares_sensibly(completion, answer, ok):
    assert _template_module("trl_verify").verify("q", completion, {"answer": answer}) is ok


# ---- 16: small limits ----------------------------------------------------------------------------------------


def test_small_limits():
    assert human_bytes(2e18) == "2.0 EB"
    assert logit_storage(1000, 32)["top_k"] == 32  # top-k cannot exceed the vocabulary
    answer = ask(**SHARED, teacher_params=46_000_000_000, teacher_active_params=1_000_000_000, student_params=7_000_000_000)
    assert "active_smaller_than_student" in ids(answer)
    assert "GOLD" not in text(ask(teacher_access="outputs_only", teacher_serving="api", purpose="chat"))


def test_one_temperature_bound_for_advice_and_export():
    from skill.export.request import ExportRequest

    top = LLM["thresholds"]["planned_temperature_max"]
    bounds = [getattr(m, "le", None) for m in ExportRequest.model_fields["temperature"].metadata]
    assert top in bounds  # the export request's own upper bound
    with pytest.raises(InputError) as err:
        ask(**SHARED, planned_temperature=top * 2)
    assert err.value.field == "planned_temperature"
    assert "classification_temperature_on_generation" in ids(ask(**SHARED, planned_temperature=top))
