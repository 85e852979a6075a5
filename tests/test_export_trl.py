"""kd-skill export --engine trl: the recipe folder, export-time refusals, and real 2-step TRL runs on tiny
randomly initialised causal LMs that share a tokenizer built here (no downloads: HF_HUB_OFFLINE=1)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
import yaml
from mcp import Client

from mcp_server.server import build_server
from skill.distill.jobs import Limits
from skill.errors import InputError
from skill.export import export_recipe
from skill.export.request import ExportRequest
from skill.rules import get_rules
from tests.mcp_helpers import text_of

pytest.importorskip("trl", reason="the [llm] extra (trl, transformers) is not installed")

SENTENCES = ["the teacher explains the answer", "the student learns from the teacher", "distillation makes a small model",
             "what is the capital of france", "paris is the capital of france", "two plus two is four"]
RECIPE_FILES = ["README.md", "accelerate.yaml", "accelerate_cpu.yaml", "config.yaml", "train.py", "trl_evidence.py", "trl_verify.py"]
OFFLINE = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def _tokenizer(sentences: list[str], vocab: int):
    """A byte-level BPE tokenizer trained on a few sentences, wrapped for transformers (nothing downloaded)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(sentences, trainers.BpeTrainer(vocab_size=vocab, special_tokens=["<unk>", "<pad>", "<s>", "</s>"],
                                                          initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", bos_token="<s>", eos_token="</s>")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """Teacher (hidden 64) and student (hidden 32): 2-layer Llama configs, random weights, one shared tokenizer."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import LlamaConfig, LlamaForCausalLM

    root = tmp_path_factory.mktemp("llm")
    shared = _tokenizer(SENTENCES, 300)
    paths = {}
    for name, hidden in (("teacher", 64), ("student", 32)):
        config = LlamaConfig(vocab_size=len(shared), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2, num_attention_heads=4,
                             num_key_value_heads=4, max_position_embeddings=256, bos_token_id=shared.bos_token_id, eos_token_id=shared.eos_token_id,
                             pad_token_id=shared.pad_token_id)
        LlamaForCausalLM(config).save_pretrained(root / name)
        shared.save_pretrained(root / name)
        paths[name] = root / name
    # another tokenizer of the SAME size but other merges: TRL's vocab_size check cannot tell them apart
    other = _tokenizer([s[::-1] for s in SENTENCES], len(shared))
    other.save_pretrained(root / "other_tokenizer")
    paths["other_tokenizer"] = root / "other_tokenizer"
    # Qwen2-style pair over the SAME tokenizer with different vocab_size (as Qwen2.5 1.5B 151,936 vs 7B 152,064 rows):
    # the padded teacher's extra rows lie past the tokenizer; the short one lacks real tokens and must be refused
    from transformers import Qwen2Config, Qwen2ForCausalLM

    for name, hidden, rows in (("padded_teacher", 64, len(shared) + 64), ("short_teacher", 64, len(shared) - 4), ("qwen_student", 32, len(shared))):
        config = Qwen2Config(vocab_size=rows, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2, num_attention_heads=4,
                             num_key_value_heads=2, max_position_embeddings=256, bos_token_id=shared.bos_token_id, eos_token_id=shared.eos_token_id,
                             pad_token_id=shared.pad_token_id, tie_word_embeddings=name == "qwen_student")
        Qwen2ForCausalLM(config).save_pretrained(root / name)
        shared.save_pretrained(root / name)
        paths[name] = root / name
    rows = [{"prompt": "what is the capital of france", "completion": " paris is the capital of france"},
            {"prompt": "two plus two", "completion": " two plus two is four"},
            {"messages": [{"role": "user", "content": "who explains"}, {"role": "assistant", "content": "the teacher explains the answer"}]},
            {"prompt": "the student", "completion": " learns from the teacher"}]
    rows += [{"prompt": "what does distillation make", "completion": " distillation makes a small model"},
             {"prompt": "who learns", "completion": " the student learns from the teacher"}]
    (root / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    questions = [{"prompt": "two plus two", "answer": "4"}, {"prompt": "the teacher explains"}, {"prompt": "what is the capital"}]
    (root / "questions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in questions))
    paths["questions"] = root / "questions.jsonl"
    (root / "prompts.jsonl").write_text("".join(json.dumps({"prompt": p}) + "\n" for p in ("what is the capital", "two plus")) + json.dumps(rows[1]) + "\n")
    paths.update(data=root / "data.jsonl", prompts=root / "prompts.jsonl")
    return paths


def _export(tiny, out: Path, **fields) -> dict:
    options = {"gradient_checkpointing": False, "max_new_tokens": 8, **fields.pop("engine_options", {})}
    fields = {"teacher": str(tiny["teacher"]), "student": str(tiny["student"]), "data": str(tiny["data"]), **fields}
    batch = fields.pop("global_batch_size", 2)
    request = ExportRequest(engine="trl", output_dir=str(out), global_batch_size=batch, engine_options=options, **fields)
    response = export_recipe(request)
    assert sorted(response.files) == RECIPE_FILES
    return yaml.safe_load((out / "config.yaml").read_text())


def _run(folder: Path, *launcher: str) -> dict:
    """The README's smoke-test command, 2 optimizer steps; the log is kept beside the recipe for the report."""
    command = [*launcher, str(folder / "train.py"), "--max-steps", "2", "--cpu"]
    proc = subprocess.run(command, cwd=folder, env=OFFLINE, capture_output=True, text=True, timeout=300)
    (folder / "run.log").write_text(proc.stdout + proc.stderr)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    metrics = json.loads((folder / "run" / "metrics.json").read_text())
    assert metrics["steps"] == 2 and len(metrics["loss"]) == 2
    assert all(0 <= e["loss"] < 50 for e in metrics["loss"])
    assert (folder / "run" / "student" / "model.safetensors").is_file()
    return metrics


def _changed(before: Path, after: Path) -> bool:
    from safetensors.numpy import load_file

    a, b = load_file(str(before / "model.safetensors")), load_file(str(after / "model.safetensors"))
    return any(not (a[k] == b[k]).all() for k in a)


# ---- export: the folder and the settings carried from the plan ---------------------------------


def test_token_kd_settings_come_from_the_llm_rules(tiny, tmp_path):
    config = _export(tiny, tmp_path / "r", method="token_kd")
    hp = get_rules().llm_method["methods"]["token_kd"]["hyperparameters"]
    d = config["distill"]
    assert (d["trainer"]["value"], d["beta"]["value"], d["lmbda"]["value"], d["seq_kd"]["value"]) == ("GKDTrainer", hp["trl_beta"], hp["trl_lmbda"], False)
    assert d["loss_temperature"]["value"] == 1 and "llm_method.yaml" in d["beta"]["evidence"]
    assert config["data"]["rows_checked"]["value"] == 6 and config["data"]["rows_with_completion"]["value"] == 6
    accelerate = yaml.safe_load((tmp_path / "r" / "accelerate_cpu.yaml").read_text())
    assert accelerate["use_cpu"] is True and accelerate["num_processes"] == 1


def test_on_policy_and_sequence_settings(tiny, tmp_path):
    hp = get_rules().llm_method["methods"]["on_policy_kd"]["hyperparameters"]
    on = _export(tiny, tmp_path / "on", method="on_policy_kd")["distill"]
    assert (on["beta"]["value"], on["lmbda"]["value"], on["sampling_temperature"]["value"]) == (hp["beta"], hp["lmbda"], hp["sampling_temperature"])
    seq = _export(tiny, tmp_path / "seq", method="sequence_kd")["distill"]
    assert seq["trainer"]["value"] == "SFTTrainer" and "beta" not in seq
    default = _export(tiny, tmp_path / "default")["distill"]  # no method: the rules' safe default
    assert default["method"]["value"] == "sequence_kd"


@pytest.mark.parametrize("launch, kind", [("multi_gpu", "MULTI_GPU"), ("fsdp", "FSDP"), ("deepspeed_zero3", "DEEPSPEED")])
def test_accelerate_config_for_the_chosen_launch(tiny, tmp_path, launch, kind):
    _export(tiny, tmp_path / launch, method="token_kd", engine_options={"accelerate": launch, "num_processes": 2})
    config = yaml.safe_load((tmp_path / launch / "accelerate.yaml").read_text())
    assert config["distributed_type"] == kind and config["num_processes"] == 2 and config["mixed_precision"] == "bf16"


def test_beta_near_an_endpoint_is_noted(tiny, tmp_path):
    response = export_recipe(ExportRequest(engine="trl", method="on_policy_kd", teacher=str(tiny["teacher"]), student=str(tiny["student"]),
                                           data=str(tiny["data"]), output_dir=str(tmp_path / "r"), engine_options={"beta": 0.02},
                                           global_batch_size=2))
    assert any("PR 3043" in w for w in response.warnings)


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"method": "response"}, "method"),
        ({"method": "token_kd", "teacher": None}, "teacher"),
        ({"student": None}, "student"),
        ({"method": "token_kd", "temperature": 4.0}, "temperature"),
        ({"method": "token_kd", "data": "prompts"}, "data"),  # token_kd needs completions
        ({"method": "sequence_kd", "teacher": None, "data": "prompts"}, "data"),  # nobody to write the completions
        ({"method": "sequence_kd", "engine_options": {"beta": 0.5}}, "engine_options"),
        ({"method": "token_kd", "teacher": "/no/such/model"}, "teacher"),
        ({"method": "token_kd", "student": "not a hub id!"}, "student"),
        ({"method": "token_kd", "student": "org/mod\u00e8le"}, "student"),  # hub ids are ASCII
        ({"teacher_hidden": [64]}, "teacher_hidden"),
        ({"baseline": True}, "baseline"),
        ({"engine_options": {"lmbda": 2}}, "engine_options"),
        ({"engine_options": {"colour": "red"}}, "engine_options"),
        ({"global_batch_size": 3, "engine_options": {"num_processes": 2}}, "global_batch_size"),
    ],
)
def test_export_refuses_with_the_field(tiny, tmp_path, fields, field):
    base = {"engine": "trl", "method": "on_policy_kd", "teacher": str(tiny["teacher"]), "student": str(tiny["student"]), "data": str(tiny["data"]),
            "output_dir": str(tmp_path / "r")}
    fields = {k: (str(tiny[v]) if k == "data" else v) for k, v in fields.items()}
    with pytest.raises(InputError) as err:
        export_recipe(ExportRequest(**{**base, **fields}))
    assert err.value.field == field
    assert not (tmp_path / "r").exists()  # refused before touching the disk


@pytest.mark.parametrize(
    "content, message",
    [
        (b'{"prompt": "ok", "completion": " fine"}\n{"text": "no prompt"}\n', "line 2"),
        (b'{"prompt": "ok", "completion": 3}\n', "line 1: 'completion' must be a string"),
        (b'\xff\xfe not utf-8\n', "line 1 is not a UTF-8 JSON object"),
        (b"[" * 100_000 + b"\n", "line 1 is not a UTF-8 JSON object"),  # nesting deep enough to exhaust the parser's recursion
        (b'{"prompt": "' + b"x" * (17 * 2**20) + b'"}', "longer than 16 MiB"),  # one huge line is not read whole
        (b"\n\n", "no rows"),
    ],
)
def test_hostile_jsonl_is_refused_with_the_line(tiny, tmp_path, content, message):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(content)
    with pytest.raises(InputError, match=message) as err:
        export_recipe(ExportRequest(engine="trl", method="token_kd", teacher=str(tiny["teacher"]), student=str(tiny["student"]), data=str(bad),
                                    output_dir=str(tmp_path / "r")))
    assert err.value.field == "data"


def test_cli_export_engine_trl(tiny, tmp_path):
    base = [sys.executable, "-m", "skill", "export", "--engine", "trl", "--teacher", str(tiny["teacher"]), "--student", str(tiny["student"]),
            "--data", str(tiny["data"]), "--global-batch-size", "2", "--output-dir", str(tmp_path / "cli")]
    proc = subprocess.run([*base, "--method", "token_kd"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(proc.stdout)
    beta = next(s for s in answer["settings"] if s["name"] == "distill.beta")
    assert answer["engine"] == "trl" and beta["value"] == 0.0 and (tmp_path / "cli" / "accelerate.yaml").is_file()
    bad = subprocess.run([*base[:-1], str(tmp_path / "cli2"), "--method", "token_kd", "--temperature", "4"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "temperature" in bad.stderr


def test_torchrun_refuses_language_model_methods(tmp_path):
    with pytest.raises(InputError) as err:
        export_recipe(ExportRequest(engine="torchrun", method="token_kd", data="digits", output_dir=str(tmp_path / "r")))
    assert err.value.field == "method" and "trl" in str(err.value)


def test_mcp_export_with_engine_trl_confines_the_data(tiny, tmp_path):
    data_root, out_root = tiny["data"].parent, tmp_path / "out"
    arguments = {"engine": "trl", "method": "token_kd", "teacher": str(tiny["teacher"]), "student": str(tiny["student"]), "data": "data.jsonl",
                 "output_dir": "llm", "global_batch_size": 2}

    async def go():
        async with Client(build_server(Limits(data_root=data_root, output_root=out_root))) as client:
            good = await client.call_tool("kd_export_recipe", arguments)
            outside = await client.call_tool("kd_export_recipe", {**arguments, "data": "../../etc/passwd.jsonl"})
            return good, outside

    good, outside = anyio.run(go)
    assert not good.is_error, text_of(good)
    assert good.structured_content["engine"] == "trl" and (out_root / "llm" / "train.py").is_file()
    assert outside.is_error and "data" in text_of(outside)


def test_train_script_refuses_two_tokenizers_of_one_size(tiny, monkeypatch):
    """The check TRL does not make: same vocab_size, different ids -> the run stops before training."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    spec = importlib.util.spec_from_file_location("kd_trl_train", Path(__file__).resolve().parents[1] / "skill" / "export" / "templates" / "trl_train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    student = AutoTokenizer.from_pretrained(tiny["student"])
    other = AutoTokenizer.from_pretrained(tiny["other_tokenizer"])
    assert len(other) == len(student) and other.get_vocab() != student.get_vocab()
    with pytest.raises(SystemExit, match="tokenizer mismatch"):
        module.check_same_tokenizer(str(tiny["other_tokenizer"]), student)
    module.check_same_tokenizer(str(tiny["teacher"]), student)  # the shared tokenizer passes


# ---- real runs: 2 optimizer steps each ------------------------------------------------------------


@pytest.mark.slow
def test_on_policy_recipe_runs_two_steps_with_accelerate(tiny, tmp_path):
    """lmbda 1: every batch is sampled from the student, so generation and the JSD loss both run."""
    folder = tmp_path / "on_policy"
    _export(tiny, folder, method="on_policy_kd", engine_options={"lmbda": 1.0})
    accelerate = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(folder / "accelerate_cpu.yaml")]
    metrics = _run(folder, *accelerate)
    assert metrics["trainer"] == "DistillationTrainer" and metrics["versions"]["trl"]  # TRL's stable trainer, not experimental GKD
    assert _changed(tiny["student"], folder / "run" / "student")


@pytest.mark.slow
def test_token_kd_recipe_runs_two_steps(tiny, tmp_path):
    folder = tmp_path / "token"
    _export(tiny, folder, method="token_kd")
    metrics = _run(folder, sys.executable)
    assert metrics["trainer"] == "GKDTrainer" and _changed(tiny["student"], folder / "run" / "student")


@pytest.mark.slow
def test_sequence_kd_recipe_completes_prompts_with_the_teacher_then_fine_tunes(tiny, tmp_path):
    folder = tmp_path / "sequence"
    config = _export(tiny, folder, method="sequence_kd", data=str(tiny["prompts"]), engine_options={"heldout_rows": 0})
    assert config["data"]["rows_with_completion"]["value"] == 1
    metrics = _run(folder, sys.executable)
    assert metrics["trainer"] == "SFTTrainer" and metrics["teacher_completions_written"] == 2
    written = [json.loads(line) for line in (folder / "run" / "teacher_completions.jsonl").read_text().splitlines()]
    assert len(written) == 3 and all(isinstance(r["completion"], str) for r in written)
    assert written[2]["completion"] == " two plus two is four"  # a given completion is kept
    assert _changed(tiny["student"], folder / "run" / "student")


def test_several_machines_command_gives_accelerate_the_total_process_count(tmp_path):
    # accelerate runs num_processes // num_machines per machine, so the per-machine count of accelerate.yaml
    # would start too few processes (or none) on each machine
    from skill.export import trl

    command = trl.commands(tmp_path)["several machines"]
    assert "--num_machines NODES --num_processes TOTAL_GPUS" in command


def test_chat_rows_keep_their_roles(tmp_path):
    """A system prompt and earlier turns stay turns for the chat template, instead of one flattened user turn."""
    spec = importlib.util.spec_from_file_location("kd_trl_rows", Path(__file__).resolve().parents[1] / "skill" / "export" / "templates" / "trl_train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    chat = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "capital of france?"}]
    data = tmp_path / "chat.jsonl"
    data.write_text(json.dumps({"messages": [*chat, {"role": "assistant", "content": "paris"}]}) + "\n" + json.dumps({"prompt": "two plus two"}) + "\n")
    answered, plain = module.read_rows(data)
    assert module.prompt_turns(answered) == chat and answered["completion"] == "paris"
    assert module.prompt_turns(plain) == [{"role": "user", "content": "two plus two"}]
    assert module.as_jsonl_row(answered) == {"messages": [*chat, {"role": "assistant", "content": "paris"}]}  # written back as it came


# ---- issue 20: the stable trainer, vocab sizes, reasoning traces, evidence -------------------------


def _template_module(name: str):
    spec = importlib.util.spec_from_file_location(f"kd_{name}", Path(__file__).resolve().parents[1] / "skill" / "export" / "templates" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_on_policy_exports_the_stable_trainer_and_gkd_only_when_it_cannot(tiny, tmp_path):
    on = _export(tiny, tmp_path / "on", method="on_policy_kd")["distill"]
    assert (on["trainer"]["value"], on["lmbda"]["value"]) == ("DistillationTrainer", 1.0)
    mixed = _export(tiny, tmp_path / "mixed", method="on_policy_kd", engine_options={"lmbda": 0.5})["distill"]
    assert mixed["trainer"]["value"] == "GKDTrainer" and "cannot express" in mixed["trainer"]["evidence"]
    token = _export(tiny, tmp_path / "token", method="token_kd")["distill"]
    assert token["trainer"]["value"] == "GKDTrainer" and "DistillationTrainer cannot train off-policy" in token["trainer"]["evidence"]
    draft = _export(tiny, tmp_path / "draft", method="draft_model_kd")["distill"]
    assert draft["trainer"]["value"] == "DistillationTrainer" and draft["beta"]["value"] == 0.5


def test_export_reads_the_installed_trl_signature(tiny, tmp_path):
    versions = _export(tiny, tmp_path / "on", method="on_policy_kd")["versions"]
    assert "DistillationConfig" in versions["trl_fields_checked"]["value"] and "present" in versions["trl_fields_checked"]["value"]
    versions = _export(tiny, tmp_path / "tok", method="token_kd")["versions"]
    assert "GKDConfig" in versions["trl_fields_checked"]["value"] and "lmbda" in versions["trl_fields_checked"]["value"]


def test_loss_temperature_can_move_on_the_stable_trainer_only(tiny, tmp_path):
    on = _export(tiny, tmp_path / "on", method="on_policy_kd", temperature=1.2)["distill"]
    assert on["loss_temperature"]["value"] == 1.2 and on["sampling_temperature"]["value"] == 1.2  # one temperature in DistillationTrainer
    with pytest.raises(InputError) as err:
        _export(tiny, tmp_path / "tok", method="token_kd", temperature=1.2)
    assert err.value.field == "temperature" and "T = 1" in str(err.value)


def test_vocab_size_pair_is_checked_at_export(tiny, tmp_path):
    config = _export(tiny, tmp_path / "padded", method="on_policy_kd", teacher=str(tiny["padded_teacher"]), student=str(tiny["qwen_student"]))
    check = config["distill"]["vocab_check"]
    assert "cuts the teacher's head" in check["value"] and "6252" in check["evidence"]
    with pytest.raises(InputError) as err:
        _export(tiny, tmp_path / "short", method="token_kd", teacher=str(tiny["short_teacher"]), student=str(tiny["qwen_student"]))
    assert err.value.field == "teacher" and "cannot be sliced" in str(err.value)
    assert not (tmp_path / "short").exists()


def test_run_start_aligns_or_refuses_the_vocab_in_one_line(tiny, monkeypatch):
    """The check TRL does not make usefully: it stops on any vocab_size difference, even padding rows."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    module = _template_module("trl_train")
    tokenizer = AutoTokenizer.from_pretrained(tiny["qwen_student"])
    student = AutoModelForCausalLM.from_pretrained(tiny["qwen_student"])
    padded = AutoModelForCausalLM.from_pretrained(tiny["padded_teacher"])
    before = padded.get_output_embeddings().weight[: len(tokenizer)].detach().clone()
    note = module.align_vocab(student, padded, tokenizer)
    assert "cut to the shared" in note and padded.config.vocab_size == student.config.vocab_size == len(tokenizer)
    assert (padded.get_output_embeddings().weight.detach() == before).all()  # every real token's row is kept as it was
    short = AutoModelForCausalLM.from_pretrained(tiny["short_teacher"])
    with pytest.raises(SystemExit) as err:
        module.align_vocab(student, short, tokenizer)
    assert "cannot be sliced" in str(err.value) and "\n" not in str(err.value)


def test_reasoning_recipe_defaults_sample_and_check(tiny, tmp_path):
    config = _export(tiny, tmp_path / "r", method="reasoning_trace_kd", data=str(tiny["questions"]), engine_options={"max_new_tokens": None})
    d, hp = config["distill"], get_rules().llm_method["methods"]["reasoning_trace_kd"]["hyperparameters"]
    assert (d["teacher_decoding"]["value"], d["verify"]["value"], d["trainer"]["value"]) == ("sample", True, "SFTTrainer")
    assert d["max_new_tokens"]["value"] == hp["max_new_tokens"] >= 8192 and config["data"]["max_length"]["value"] >= 8192
    with pytest.raises(InputError) as err:
        _export(tiny, tmp_path / "g", method="reasoning_trace_kd", data=str(tiny["questions"]), engine_options={"teacher_decoding": "greedy", "verify": True})
    assert err.value.field == "engine_options"


def test_verifier_reads_the_final_answer():
    verify = _template_module("trl_verify")
    assert verify.final_answer("so the sum is \\boxed{\\frac{1}{2}}.") == "\\frac{1}{2}"
    assert verify.final_answer("2 and 2 make 4") == "4" and verify.final_answer("no digits here\nParis") == "Paris"
    assert verify.verify("q", "... the answer is 1,024.", {"answer": "1024"}) is True
    assert verify.verify("q", "the answer is 5", {"answer": "4"}) is False
    assert verify.verify("q", "anything", {}) is None  # unchecked, kept and counted


def test_readme_has_the_memory_plan(tiny, tmp_path):
    _export(tiny, tmp_path / "r", method="on_policy_kd")
    readme = (tmp_path / "r" / "README.md").read_text()
    from skill.export.trl import param_count

    teacher = param_count(str(tiny["teacher"]))
    assert teacher and "## Memory plan" in readme and f"Teacher {teacher:,} parameters" in readme
    assert "fsdp_or_zero3" in readme and "vllm_server" in readme


def _check_evidence(folder: Path, heldout: int, same_vocab: bool = True) -> dict:
    """generation_evidence.json beside metrics.json, in the exact shape issue 21's reader expects, with sane values."""
    evidence = json.loads((folder / "run" / "generation_evidence.json").read_text())
    assert set(evidence) == {"kind", "schema_version", "heldout", "samples", "models"}
    assert (evidence["kind"], evidence["schema_version"]) == ("generation", 1)
    h = evidence["heldout"]
    assert set(h) == {"n_sequences", "n_tokens", "student_nll_per_token", "teacher_nll_per_token", "token_kl_teacher_to_student",
                      "greedy_next_token_agreement", "same_tokenizer"}
    assert h["same_tokenizer"] is same_vocab
    assert h["n_sequences"] == heldout and h["n_tokens"] >= heldout
    # random tiny models over a ~300-token vocabulary: NLL near log(300) = 5.7, far from 0 and from absurd
    assert 0 < h["student_nll_per_token"] < 20 and 0 < h["teacher_nll_per_token"] < 20
    if same_vocab:
        assert h["token_kl_teacher_to_student"] >= 0 and 0 <= h["greedy_next_token_agreement"] <= 1
    assert 1 <= len(evidence["samples"]) <= 8
    assert all(set(x) == {"prompt", "teacher", "student"} and all(isinstance(v, str) and len(v) <= 2000 for v in x.values()) for x in evidence["samples"])
    m = evidence["models"]
    assert m["teacher_params"] > m["student_params"] > 0 and m["student_bytes"] == 4 * m["student_params"]  # float32 on the CPU
    return evidence


@pytest.mark.slow
def test_padded_vocab_pair_runs_two_steps_on_the_stable_trainer(tiny, tmp_path):
    """Reproduces TRL's stop ('The student model has vocab_size 300 but the teacher model has vocab_size 364') on the
    old recipe; now the padded teacher's head is cut to the shared rows and DistillationTrainer runs."""
    folder = tmp_path / "padded"
    _export(tiny, folder, method="on_policy_kd", teacher=str(tiny["padded_teacher"]), student=str(tiny["qwen_student"]))
    metrics = _run(folder, sys.executable)
    assert metrics["trainer"] == "DistillationTrainer" and "cut to the shared" in metrics["vocab_alignment"]
    assert "cut to the shared 300 rows" in (folder / "run.log").read_text()
    evidence = _check_evidence(folder, heldout=metrics["heldout_rows"])
    # a draft's figure of merit, beside (not inside) the evidence file: 1 - TVD lies in [0, 1], and a KL of 0 would mean 1
    assert 0 <= metrics["heldout_expected_acceptance_rate"] <= 1
    assert evidence["heldout"]["token_kl_teacher_to_student"] > 0 and metrics["heldout_expected_acceptance_rate"] < 1
    # the release check reads what the recipe wrote (issue 21): one decision, with the generation checks
    check = subprocess.run([sys.executable, "-m", "skill", "release-check", str(folder / "run")], capture_output=True,
                           text=True, timeout=300)
    assert check.returncode == 0, check.stderr
    report = json.loads(check.stdout)
    assert report["kind"] == "generation" and report["decision"] in ("ship_with_conditions", "do_not_ship")
    assert {c["id"] for c in report["generation_checks"]} >= {"perplexity_ratio", "token_kl", "greedy_agreement"}


@pytest.mark.slow
def test_padded_vocab_pair_runs_token_kd_on_gkd(tiny, tmp_path):
    folder = tmp_path / "padded_token"
    _export(tiny, folder, method="token_kd", teacher=str(tiny["padded_teacher"]), student=str(tiny["qwen_student"]))
    metrics = _run(folder, sys.executable)
    assert metrics["trainer"] == "GKDTrainer" and metrics["vocab_alignment"]
    _check_evidence(folder, heldout=1)


@pytest.mark.slow
def test_reasoning_recipe_samples_checks_and_fine_tunes(tiny, tmp_path):
    folder = tmp_path / "reasoning"
    _export(tiny, folder, method="reasoning_trace_kd", data=str(tiny["questions"]),
            engine_options={"samples_per_prompt": 2, "heldout_rows": 0, "max_length": 256})
    metrics = _run(folder, sys.executable)
    counts = metrics["trace_counts"]
    assert metrics["trainer"] == "SFTTrainer" and counts["sampled"] == 6
    assert counts["unchecked"] == 4  # two rows without an answer, two samples each
    assert counts["written"] + counts["rejected"] <= counts["sampled"] and counts["written"] >= 1
    assert counts["hit_max_new_tokens"] >= 0


def test_served_teacher_uses_the_server_trainer_with_settings_trl_accepts(tiny, tmp_path, monkeypatch):
    """teacher_server_url: TRL's ServerDistillationTrainer; the kwargs train.py builds are accepted by the installed config
    (the trainer itself needs a running `trl vllm-serve`, which CI does not have)."""
    url = "http://127.0.0.1:8000"
    config = _export(tiny, tmp_path / "srv", method="on_policy_kd", engine_options={"teacher_server_url": url, "beta": 0.0})
    d = config["distill"]
    assert d["trainer"]["value"] == "ServerDistillationTrainer" and d["teacher_top_k"]["value"] == get_rules().llm_method["logit_storage"]["top_k"]
    assert "present" in config["versions"]["trl_fields_checked"]["value"]
    assert "trl vllm-serve" in (tmp_path / "srv" / "README.md").read_text()
    rev = _export(tiny, tmp_path / "rev", method="on_policy_kd", engine_options={"teacher_server_url": url})["distill"]
    assert rev["teacher_top_k"]["value"] == 1  # beta 1 (reverse KL): TRL supports top-1 only
    for options, field in (({"teacher_server_url": url, "teacher_top_k": 8}, "engine_options"), ({"teacher_server_url": "ftp://x"}, "engine_options")):
        with pytest.raises(InputError) as err:
            _export(tiny, tmp_path / "bad", method="on_policy_kd", engine_options=options)
        assert err.value.field == field
    with pytest.raises(InputError):
        _export(tiny, tmp_path / "tok", method="token_kd", engine_options={"teacher_server_url": url})
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from trl.experimental.server_distillation import ServerDistillationConfig

    module = _template_module("trl_train")
    settings = module.load_settings(tmp_path / "srv" / "config.yaml")
    common = dict(output_dir=str(tmp_path / "o"), use_cpu=True, bf16=False, report_to="none", max_length=64)
    made = ServerDistillationConfig(**module.server_config_kwargs(settings, common))
    assert (made.teacher_model_server_url, made.loss_top_k, made.beta) == (url, 64, 0.0)
