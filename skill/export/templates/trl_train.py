"""Distil a causal language model with Hugging Face TRL, as planned by knowledge-distillation-deep.

Written by `kd-skill export --engine trl`; every setting is in config.yaml beside this file, with why it has
that value. Launch with Accelerate (README.md has the commands):

    accelerate launch --config_file accelerate.yaml train.py

Methods (distill.method):
- token_kd:     TRL GKDTrainer with lmbda 0 and beta 0: forward KL(teacher || student) on every next-token
                distribution of the dataset's completions, loss at T = 1.
- on_policy_kd: GKDTrainer with lmbda > 0: a fraction of batches is sampled from the student itself and scored
                against the teacher with the generalised JSD (beta 0 forward KL, 0.5 JSD, 1 reverse KL).
- sequence_kd:  SFTTrainer on the teacher's completions; rows without one are first completed by a local
                teacher with ITS OWN tokenizer, so it works across tokenizers and for API teachers.

Token-level methods refuse to start unless teacher and student tokenizers are identical: TRL only checks the
vocabulary size, and two tokenizers of one size still map ids to different text.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
# a plain template for tokenizers without a chat template: the formatted prompt is a prefix of the formatted
# conversation, which is all TRL's collator needs to split prompt from completion
PLAIN_CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['content'] }}{% if not loop.last %}{{ '\\n' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '\\n' }}{% endif %}"
)


def load_settings(path: Path) -> dict[str, Any]:
    """config.yaml as {'section.name': value}; `why` and `evidence` are for people."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return {f"{section}.{name}": leaf["value"] for section, entries in data.items() if isinstance(entries, dict)
            for name, leaf in entries.items() if isinstance(leaf, dict) and "value" in leaf}


def read_rows(path: Path) -> list[dict[str, Any]]:
    """JSONL rows: {"prompt": str, "completion": str (optional)} or {"messages": [{"role", "content"}, ...]}."""
    rows = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            turns = None
            if "messages" in row:
                # the roles (system, earlier turns) are kept for the chat template: flattening them into one user
                # turn would train the student on a format it never sees when served
                turns = row["messages"]
                answered = turns[-1].get("role") == "assistant"
                turns, completion = (turns[:-1], turns[-1]["content"]) if answered else (turns, None)
                row = {"prompt": "\n".join(m["content"] for m in turns), "completion": completion}
            if not isinstance(row.get("prompt"), str):
                sys.exit(f"data line {number}: needs a string 'prompt' (or 'messages')")
            rows.append({"prompt": row["prompt"], "completion": row.get("completion"), "prompt_messages": turns})
    if not rows:
        sys.exit(f"data: {path} has no rows")
    return rows


def prompt_turns(row: dict[str, Any]) -> list[dict[str, str]]:
    """The prompt as chat turns: the row's own messages, or its text as one user turn."""
    return row["prompt_messages"] or [{"role": "user", "content": row["prompt"]}]


def as_jsonl_row(row: dict[str, Any]) -> dict[str, Any]:
    """A row in the input's own format, so teacher_completions.jsonl reads back with its roles."""
    if row["prompt_messages"]:
        return {"messages": row["prompt_messages"] + [{"role": "assistant", "content": row["completion"]}]}
    return {"prompt": row["prompt"], "completion": row["completion"]}


def load_model(name: str, dtype: Any):
    """safetensors only (a pickled checkpoint is code), and never remote code."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(name, dtype=dtype, use_safetensors=True, trust_remote_code=False)


def check_same_tokenizer(teacher: str, student_tokenizer: Any) -> None:
    """Token-level KD compares distributions id by id: the two vocabularies must be the same mapping."""
    from transformers import AutoTokenizer

    teacher_tokenizer = AutoTokenizer.from_pretrained(teacher, trust_remote_code=False)
    if teacher_tokenizer.get_vocab() != student_tokenizer.get_vocab():
        sys.exit("tokenizer mismatch: teacher and student map token ids to different text, so token-level KD would train "
                 "on the wrong targets (TRL issues 3028, 4562). Export with method sequence_kd, or use a cross-tokenizer "
                 "method (TRL's GOLD trainer with use_uld_loss).")


def complete_with_teacher(rows: list[dict[str, Any]], s: dict[str, Any], dtype: Any) -> int:
    """Sequence-level KD: the teacher writes the missing completions with its own tokenizer (greedy: its most likely answer)."""
    import torch
    from transformers import AutoTokenizer

    missing = [r for r in rows if not r.get("completion")]
    if not missing:
        return 0
    if not s["models.teacher"]:
        sys.exit(f"data: {len(missing)} rows have no completion and no teacher is set to write them")
    tokenizer = AutoTokenizer.from_pretrained(s["models.teacher"], trust_remote_code=False)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    teacher = load_model(s["models.teacher"], dtype).to("cuda" if torch.cuda.is_available() else "cpu").eval()
    for start in range(0, len(missing), 8):
        batch = missing[start:start + 8]
        prompts = [tokenizer.apply_chat_template(r["prompt_messages"], tokenize=False, add_generation_prompt=True)
                   if r["prompt_messages"] and tokenizer.chat_template else r["prompt"] for r in batch]
        inputs = tokenizer(prompts, return_tensors="pt", padding=True).to(teacher.device)
        with torch.no_grad():
            out = teacher.generate(**inputs, max_new_tokens=int(s["distill.max_new_tokens"]), do_sample=False, pad_token_id=tokenizer.pad_token_id)
        for row, ids in zip(batch, out[:, inputs["input_ids"].shape[1]:]):
            text = tokenizer.decode(ids, skip_special_tokens=True).strip()
            row["completion"] = text if row["prompt_messages"] else " " + text  # a chat turn carries no joining space
    del teacher
    return len(missing)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(HERE / "config.yaml"))
    parser.add_argument("--output-dir", default=None, help="default: run/ beside this script")
    parser.add_argument("--max-steps", type=int, default=None, help="stop after this many optimizer steps (a smoke test)")
    parser.add_argument("--cpu", action="store_true", help="train on the CPU even when a GPU is present")
    args = parser.parse_args()
    s = load_settings(Path(args.config))
    out = Path(args.output_dir or HERE / "run").resolve()
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    import datasets
    import torch
    import transformers
    import trl
    from accelerate import PartialState
    from datasets import Dataset
    from transformers import AutoTokenizer, set_seed

    started = time.time()
    set_seed(int(s["train.seed"]))
    state = PartialState()
    method = s["distill.method"]
    on_gpu = torch.cuda.is_available() and not args.cpu
    bf16 = on_gpu and torch.cuda.is_bf16_supported() if s["train.bf16"] == "auto" else bool(s["train.bf16"])
    dtype = torch.bfloat16 if bf16 else torch.float32
    per_device, remainder = divmod(int(s["train.global_batch_size"]), int(s["train.accumulation_steps"]) * state.num_processes)
    if per_device < 1 or remainder:
        sys.exit(f"train.global_batch_size {s['train.global_batch_size']} is not a multiple of accumulation_steps x processes "
                 f"({s['train.accumulation_steps']} x {state.num_processes})")

    tokenizer = AutoTokenizer.from_pretrained(s["models.student"], trust_remote_code=False)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    source = Path(s["data.source"])
    rows = read_rows(source if source.is_absolute() else HERE / source)
    common = dict(
        output_dir=str(out), per_device_train_batch_size=per_device, gradient_accumulation_steps=int(s["train.accumulation_steps"]),
        learning_rate=float(s["train.learning_rate"]), num_train_epochs=float(s["train.epochs"]), max_steps=args.max_steps or s["train.max_steps"] or -1,
        seed=int(s["train.seed"]), bf16=bf16, fp16=False, use_cpu=not on_gpu, gradient_checkpointing=bool(s["train.gradient_checkpointing"]),
        max_length=int(s["data.max_length"]), logging_steps=1, save_strategy="no", report_to="none",
    )
    written = 0
    if method == "sequence_kd":
        from trl import SFTConfig, SFTTrainer

        missing = sum(not r["completion"] for r in rows)
        if missing and state.num_processes > 1:
            sys.exit(f"{missing} rows need the teacher's completion: run once with one process (python train.py), then point "
                     "data.source at run/teacher_completions.jsonl and launch on N processes")
        written = complete_with_teacher(rows, s, dtype)
        if written:
            with (out / "teacher_completions.jsonl").open("w", encoding="utf-8") as handle:
                handle.writelines(json.dumps(as_jsonl_row(r)) + "\n" for r in rows)
        if any(r["prompt_messages"] for r in rows):  # conversational prompt-completion: TRL applies the chat template
            if tokenizer.chat_template is None:
                tokenizer.chat_template = PLAIN_CHAT_TEMPLATE
            examples = [{"prompt": prompt_turns(r), "completion": [{"role": "assistant", "content": r["completion"]}]} for r in rows]
        else:
            examples = [{"prompt": r["prompt"], "completion": r["completion"]} for r in rows]
        trainer = SFTTrainer(model=load_model(s["models.student"], dtype), args=SFTConfig(**common),
                             train_dataset=Dataset.from_list(examples), processing_class=tokenizer)
    else:
        from trl.experimental.gkd import GKDConfig, GKDTrainer

        check_same_tokenizer(s["models.teacher"], tokenizer)
        if tokenizer.chat_template is None:
            tokenizer.chat_template = PLAIN_CHAT_TEMPLATE
        conversations = [{"messages": prompt_turns(r) + [{"role": "assistant", "content": r["completion"] or ""}]} for r in rows]
        config = GKDConfig(**common, lmbda=float(s["distill.lmbda"]), beta=float(s["distill.beta"]), seq_kd=bool(s["distill.seq_kd"]),
                           temperature=float(s["distill.sampling_temperature"]), max_new_tokens=int(s["distill.max_new_tokens"]))
        trainer = GKDTrainer(model=load_model(s["models.student"], dtype), teacher_model=load_model(s["models.teacher"], dtype), args=config,
                             train_dataset=Dataset.from_list(conversations), processing_class=tokenizer)

    trainer.train()
    trainer.save_model(str(out / "student"))
    if state.is_main_process:
        tokenizer.save_pretrained(str(out / "student"))
        steps = [e for e in trainer.state.log_history if "loss" in e]
        metrics = {
            "method": method, "trainer": type(trainer).__name__, "steps": trainer.state.global_step, "processes": state.num_processes,
            "per_device_batch_size": per_device, "teacher_completions_written": written,
            "loss": [{"step": e["step"], "loss": e["loss"]} for e in steps], "wall_time_s": round(time.time() - started, 2),
            "versions": {"trl": trl.__version__, "transformers": transformers.__version__, "torch": torch.__version__, "datasets": datasets.__version__},
        }
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
        print(json.dumps({k: metrics[k] for k in ("method", "trainer", "steps", "loss", "wall_time_s")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
