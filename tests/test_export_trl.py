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

from mcp_server.distill_tool import Limits
from mcp_server.server import build_server
from skill.errors import InputError
from skill.export import export_recipe
from skill.export.request import ExportRequest
from skill.rules import get_rules
from tests.mcp_helpers import text_of

pytest.importorskip("trl", reason="the [llm] extra (trl, transformers) is not installed")

SENTENCES = ["the teacher explains the answer", "the student learns from the teacher", "distillation makes a small model",
             "what is the capital of france", "paris is the capital of france", "two plus two is four"]
RECIPE_FILES = ["README.md", "accelerate.yaml", "accelerate_cpu.yaml", "config.yaml", "train.py"]
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
    rows = [{"prompt": "what is the capital of france", "completion": " paris is the capital of france"},
            {"prompt": "two plus two", "completion": " two plus two is four"},
            {"messages": [{"role": "user", "content": "who explains"}, {"role": "assistant", "content": "the teacher explains the answer"}]},
            {"prompt": "the student", "completion": " learns from the teacher"}]
    (root / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "prompts.jsonl").write_text("".join(json.dumps({"prompt": p}) + "\n" for p in ("what is the capital", "two plus")) + json.dumps(rows[1]) + "\n")
    paths.update(data=root / "data.jsonl", prompts=root / "prompts.jsonl")
    return paths


def _export(tiny, out: Path, **fields) -> dict:
    options = {"gradient_checkpointing": False, "max_new_tokens": 8, **fields.pop("engine_options", {})}
    fields = {"teacher": str(tiny["teacher"]), "student": str(tiny["student"]), "data": str(tiny["data"]), **fields}
    request = ExportRequest(engine="trl", output_dir=str(out), global_batch_size=2, engine_options=options, **fields)
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
    assert config["data"]["rows_checked"]["value"] == 4 and config["data"]["rows_with_completion"]["value"] == 4
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
                                           data=str(tiny["data"]), output_dir=str(tmp_path / "r"), engine_options={"beta": 0.02}))
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
            "--data", str(tiny["data"]), "--output-dir", str(tmp_path / "cli")]
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
                 "output_dir": "llm"}

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
    assert metrics["trainer"] == "GKDTrainer" and metrics["versions"]["trl"]
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
    config = _export(tiny, folder, method="sequence_kd", data=str(tiny["prompts"]))
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
