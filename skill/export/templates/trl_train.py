"""Distil a causal language model with Hugging Face TRL, as planned by knowledge-distillation-deep.

Written by `kd-skill export --engine trl`; every setting is in config.yaml beside this file, with why it has
that value. Launch with Accelerate (README.md has the commands):

    accelerate launch --config_file accelerate.yaml train.py

Trainers (distill.trainer, chosen at export from distill.method):
- DistillationTrainer (TRL's stable trainer, `from trl import ...`): on-policy KD, every batch sampled by the
                student (GKD's lmbda 1) and scored against the teacher with the generalised JSD (beta 0 forward
                KL, 0.5 JSD, 1 reverse KL); its `temperature` is both the sampling and the loss temperature.
                on_policy_kd and draft_model_kd run here.
- GKDTrainer (trl.experimental): only where DistillationTrainer cannot express the plan: token_kd and
                prune_then_distil (off-policy, on the data's completions: lmbda 0, beta 0 forward KL), or a
                mix of data and student samples (0 < lmbda < 1). Its loss runs at T = 1.
- ServerDistillationTrainer (trl.experimental): on-policy KD with the teacher behind `trl vllm-serve`
                (distill.teacher_server_url): the loss sees the teacher's top-k log-probabilities (top-1 for beta
                above 0) plus a tail bucket, and this process holds only the student.
- SFTTrainer:   sequence_kd and reasoning_trace_kd, on the teacher's completions; rows without one are first
                completed by a local teacher with ITS OWN tokenizer (greedy, or sampled and answer-checked with
                trl_verify.py for reasoning traces), so it works across tokenizers and for API teachers.

Token-level trainers refuse to start unless teacher and student tokenizers are identical (TRL only checks the
vocabulary size, and two tokenizers of one size still map ids to different text), and one tokenizer with two
`vocab_size` values (Qwen2.5 0.5B-3B 151,936 vs 7B+ 152,064 rows) is aligned at start: rows past the
tokenizer's length are padding, so the larger head is cut to the smaller one when that still covers every token.
At the end, generation_evidence.json (trl_evidence.py) scores a held-out split the training never saw.
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
    return {
        f"{section}.{name}": leaf["value"]
        for section, entries in data.items()
        if isinstance(entries, dict)
        for name, leaf in entries.items()
        if isinstance(leaf, dict) and "value" in leaf
    }


def read_rows(path: Path) -> list[dict[str, Any]]:
    """JSONL rows: {"prompt": str, "completion": str (optional)} or {"messages": [{"role", "content"}, ...]}."""
    rows = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            answer = row.get("answer") if isinstance(row, dict) else None  # a reference answer for trl_verify.py
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
            rows.append(
                {
                    "prompt": row["prompt"],
                    "completion": row.get("completion"),
                    "prompt_messages": turns,
                    "answer": answer,
                }
            )
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


def load_model(name: str, dtype: Any, device_map: str | None = None) -> Any:
    """safetensors only (a pickled checkpoint is code), and never remote code; device_map "auto" spreads a model
    that one GPU cannot hold over every visible GPU (and CPU), for the teacher's one-process generation."""
    from transformers import AutoModelForCausalLM

    extra = {"device_map": device_map} if device_map else {}
    return AutoModelForCausalLM.from_pretrained(
        name, dtype=dtype, use_safetensors=True, trust_remote_code=False, **extra
    )


def teacher_prompts(tokenizer: Any, rows: list[dict[str, Any]]) -> list[str]:
    """Every prompt through the chat template (the plain one when the tokenizer has none), prompt rows included:
    the student's SFT formats the same rows with its template (sft_examples), so both sides see one format."""
    if tokenizer.chat_template is None:
        tokenizer.chat_template = PLAIN_CHAT_TEMPLATE
    return [tokenizer.apply_chat_template(prompt_turns(r), tokenize=False, add_generation_prompt=True) for r in rows]


def sft_examples(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Conversational prompt-completion pairs for SFTTrainer (it applies the chat template), for every row."""
    return [
        {"prompt": prompt_turns(r), "completion": [{"role": "assistant", "content": r["completion"]}]} for r in rows
    ]


def check_same_tokenizer(teacher: str, student_tokenizer: Any) -> None:
    """Token-level KD compares distributions id by id: the two vocabularies must be the same mapping."""
    from transformers import AutoTokenizer

    teacher_tokenizer = AutoTokenizer.from_pretrained(teacher, trust_remote_code=False)
    if teacher_tokenizer.get_vocab() != student_tokenizer.get_vocab():
        sys.exit(
            "tokenizer mismatch: teacher and student map token ids to different text, so token-level KD would train "
            "on the wrong targets (TRL issues 3028, 4562). Export with method sequence_kd, or use a cross-tokenizer "
            "method (TRL's GOLD trainer with use_uld_loss)."
        )


def align_vocab(student: Any, teacher: Any, tokenizer: Any) -> str | None:
    """One tokenizer, two `vocab_size` values: cut the larger embedding/head to the smaller if it covers the tokenizer.

    Rows at or past len(tokenizer) are padding added for matmul efficiency: no text maps to them, so no target can
    be one and dropping them loses nothing (TRL PR 6252). Where the smaller model has fewer rows than the tokenizer
    has tokens, some real token would have no teacher (or student) probability, so the run stops with one line.
    """
    s_rows, t_rows = student.config.get_text_config().vocab_size, teacher.config.get_text_config().vocab_size
    if s_rows == t_rows:
        return None
    n_tokens, shared = len(tokenizer), min(s_rows, t_rows)
    if shared < n_tokens:
        sys.exit(
            f"vocab_size mismatch: student {s_rows}, teacher {t_rows} rows, but the tokenizer has {n_tokens} "
            f"tokens, so the smaller head lacks {n_tokens - shared} real tokens and cannot be sliced; use a "
            "teacher and student whose vocab_size both cover the tokenizer, or sequence_kd"
        )
    larger, name = (teacher, "teacher") if t_rows > s_rows else (student, "student")
    larger.resize_token_embeddings(shared)  # keeps rows [0, shared): every real token, and drops padding rows only
    note = (
        f"vocab_size: student {s_rows}, teacher {t_rows}, tokenizer {n_tokens} tokens; the {name}'s embedding "
        f"and head were cut to the shared {shared} rows (the rest are padding past the tokenizer)"
    )
    if name == "student":
        note += "; the saved student keeps the shorter vocabulary"
    print(note, flush=True)
    return note


def require_fields(config_class: Any, names: list[str]) -> None:
    """The installed TRL must take every setting this recipe passes; a renamed argument stops here, in one line."""
    import dataclasses

    have = {f.name for f in dataclasses.fields(config_class)}
    missing = [n for n in names if n not in have]
    if missing:
        import trl

        sys.exit(
            f"TRL {trl.__version__}: {config_class.__name__} has no {', '.join(missing)}; install the TRL "
            "version in config.yaml (versions.trl) or export the recipe again with this one"
        )


def load_verifier() -> Any:
    """trl_verify.verify beside this script: the answer check for sampled reasoning traces (edit it for your task)."""
    sys.path.insert(0, str(HERE))
    from trl_verify import verify

    return verify


Rows = list[dict[str, Any]]


def complete_with_teacher(rows: Rows, s: dict[str, Any], dtype: Any) -> tuple[Rows, dict[str, int]]:
    """Sequence-level KD: the teacher writes the missing completions with its own tokenizer.

    greedy: its most likely answer (Kim and Rush's setting for translation). sample: several traces per prompt at the
    teacher's sampling temperature, each checked by trl_verify.verify (rejection sampling, the practice for
    chain-of-thought traces); a prompt with no accepted trace is dropped. Returns the rows to train on and counts.
    """
    import torch
    from transformers import AutoTokenizer

    missing = [r for r in rows if not r.get("completion")]
    counts = {"written": 0, "sampled": 0, "rejected": 0, "unchecked": 0, "hit_max_new_tokens": 0, "prompts_dropped": 0}
    if not missing:
        return rows, counts
    if not s["models.teacher"]:
        sys.exit(f"data: {len(missing)} rows have no completion and no teacher is set to write them")
    sample = s.get("distill.teacher_decoding", "greedy") == "sample"
    n = int(s.get("distill.samples_per_prompt", 1)) if sample else 1
    verify = load_verifier() if sample and s.get("distill.verify", False) else None
    tokenizer: Any = AutoTokenizer.from_pretrained(s["models.teacher"], trust_remote_code=False)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if torch.cuda.is_available():  # spread over the visible GPUs when one cannot hold the weights + KV cache
        teacher = load_model(s["models.teacher"], dtype, device_map="auto").eval()
    else:
        teacher = load_model(s["models.teacher"], dtype).eval()
    limit = int(s["distill.max_new_tokens"])
    decoding = teacher_decoding(s, n) if sample else {"do_sample": False}
    written = write_completions(teacher, tokenizer, missing, n, limit, decoding, verify, counts)
    del teacher
    kept = with_completions(rows, written, counts)
    if counts["hit_max_new_tokens"]:
        print(
            f"{counts['hit_max_new_tokens']} of {counts['sampled']} teacher completions stopped at max_new_tokens "
            f"{limit}: traces are being cut; raise distill.max_new_tokens",
            flush=True,
        )
    if not kept:
        sys.exit("no training rows left: the verifier rejected every sampled trace (see trl_verify.py)")
    return kept, counts


def teacher_decoding(s: dict[str, Any], n: int) -> dict[str, Any]:
    """generate()'s settings for sampled traces: n per prompt at the teacher's sampling temperature and top-p."""
    return {
        "do_sample": True,
        "temperature": float(s["distill.teacher_sampling_temperature"]),
        "top_p": float(s["distill.teacher_top_p"]),
        "num_return_sequences": n,
    }


def write_completions(
    teacher: Any,
    tokenizer: Any,
    missing: Rows,
    n: int,
    limit: int,
    decoding: dict[str, Any],
    verify: Any,
    counts: dict[str, int],
) -> dict[int, list[str]]:
    """The teacher's completions of the rows that lack one, by row id, in batches of 8 prompts; the rejected and the
    unchecked traces and those cut at max_new_tokens are counted in `counts`."""
    import torch

    written: dict[int, list[str]] = {}
    for start in range(0, len(missing), 8):
        batch = missing[start : start + 8]
        prompts = teacher_prompts(tokenizer, batch)
        inputs = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(teacher.device)
        with torch.no_grad():
            out = teacher.generate(**inputs, max_new_tokens=limit, pad_token_id=tokenizer.pad_token_id, **decoding)
        new = out[:, inputs["input_ids"].shape[1] :]
        for k, ids in enumerate(new):
            row = batch[k // n]
            counts["sampled"] += 1
            ended = (ids == tokenizer.eos_token_id).any() or (ids == tokenizer.pad_token_id).any()
            counts["hit_max_new_tokens"] += int(not ended and len(ids) >= limit)
            text = tokenizer.decode(ids, skip_special_tokens=True).strip()
            verdict = verify(row["prompt"], text, row) if verify else None
            counts["unchecked"] += int(verify is not None and verdict is None)
            if verdict is False:
                counts["rejected"] += 1
                continue
            written.setdefault(id(row), []).append(text)  # an assistant turn: no joining space
    return written


def with_completions(rows: Rows, written: dict[int, list[str]], counts: dict[str, int]) -> Rows:
    """The rows to train on: each row that had a completion, and one row per distinct written completion of the
    others (a prompt with none is dropped and counted)."""
    kept: list[dict[str, Any]] = []
    for row in rows:
        if row.get("completion"):
            kept.append(row)
            continue
        texts = list(dict.fromkeys(written.get(id(row), [])))  # identical samples teach nothing twice
        counts["prompts_dropped"] += int(not texts)
        kept += [{**row, "completion": t} for t in texts]
        counts["written"] += len(texts)
    return kept


def require_steps(steps: int, rows: int, global_batch: int) -> None:
    """A run that took no optimizer step trained nothing: stop non-zero instead of saving the untouched student."""
    if steps < 1:
        sys.exit(
            f"0 optimizer steps ran ({rows} training rows, train.global_batch_size {global_batch}): nothing was "
            "trained; lower train.global_batch_size or add rows"
        )


def distill_config_kwargs(s: dict[str, Any], common: dict[str, Any]) -> dict[str, Any]:
    """DistillationConfig: on-policy only (the student samples every batch); temperature is sampling and loss."""
    kwargs = {k: v for k, v in common.items() if k != "max_length"}
    kwargs.update(
        beta=float(s["distill.beta"]),
        temperature=float(s["distill.loss_temperature"]),
        max_completion_length=int(s["distill.max_new_tokens"]),
    )
    if s.get("generation.use_vllm"):
        kwargs.update(use_vllm=True, vllm_mode=s.get("generation.vllm_mode", "colocate"))
    return kwargs


def server_config_kwargs(s: dict[str, Any], common: dict[str, Any]) -> dict[str, Any]:
    """ServerDistillationConfig: DistillationConfig's settings plus the teacher's server and the top-k it returns."""
    kwargs = distill_config_kwargs(s, common)
    kwargs.update(
        teacher_model_server_url=s["distill.teacher_server_url"],
        loss_top_k=int(s["distill.teacher_top_k"]),
        loss_add_tail=True,
    )
    return kwargs


def build_training_args(trainer_name: str, s: dict[str, Any], common: dict[str, Any]) -> Any:
    """The trainer's config (a TrainingArguments). Built before any model loads: under DeepSpeed its __post_init__
    registers the HfDeepSpeedConfig that transformers' from_pretrained reads to partition weights at load (ZeRO-3)."""
    if trainer_name == "SFTTrainer":
        from trl import SFTConfig

        return SFTConfig(**common)
    config_class: type[Any]  # one of TRL's config dataclasses
    if trainer_name == "DistillationTrainer":
        from trl import DistillationConfig

        config_class, kwargs = DistillationConfig, distill_config_kwargs(s, common)
    elif trainer_name == "ServerDistillationTrainer":
        from trl.experimental.server_distillation import ServerDistillationConfig

        config_class, kwargs = ServerDistillationConfig, server_config_kwargs(s, common)
    else:
        from trl.experimental.gkd import GKDConfig

        config_class = GKDConfig
        kwargs = dict(
            common,
            lmbda=float(s["distill.lmbda"]),
            beta=float(s["distill.beta"]),
            seq_kd=bool(s["distill.seq_kd"]),
            temperature=float(s["distill.sampling_temperature"]),
            max_new_tokens=int(s["distill.max_new_tokens"]),
        )
    require_fields(config_class, [k for k in kwargs if k not in common])
    return config_class(**kwargs)


def fit_prompts(rows: list[dict[str, Any]], tokenizer: Any, max_prompt_tokens: int) -> tuple[list[dict[str, Any]], int]:
    """On-policy prompts whose chat-formatted length exceeds max_prompt_tokens are dropped: DistillationTrainer has no
    prompt truncation, and cutting a chat prompt mid-turn would train on text the student never sees served."""
    kept = []
    for row in rows:
        text = tokenizer.apply_chat_template(prompt_turns(row), tokenize=False, add_generation_prompt=True)
        if len(tokenizer(text, add_special_tokens=False)["input_ids"]) <= max_prompt_tokens:
            kept.append(row)
    return kept, len(rows) - len(kept)


def on_policy_rows(rows: list[dict[str, Any]], tokenizer: Any, s: dict[str, Any]) -> list[dict[str, Any]]:
    """data.max_length for on-policy trainers: prompt + max_new_tokens must fit, so longer prompts are dropped
    (counted)."""
    limit = int(s["data.max_length"]) - int(s["distill.max_new_tokens"])
    kept, dropped = fit_prompts(rows, tokenizer, max(limit, 1))
    if dropped:
        print(
            f"{dropped} of {len(rows)} prompts are longer than data.max_length - distill.max_new_tokens ({limit} "
            "tokens) and were dropped",
            flush=True,
        )
    if not kept:
        sys.exit(
            f"no prompt fits data.max_length {s['data.max_length']} with distill.max_new_tokens "
            f"{s['distill.max_new_tokens']}"
        )
    return kept


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(HERE / "config.yaml"))
    parser.add_argument("--output-dir", default=None, help="default: run/ beside this script")
    parser.add_argument(
        "--max-steps", type=int, default=None, help="stop after this many optimizer steps (a smoke test)"
    )
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
    from transformers import AutoTokenizer, set_seed

    sys.path.insert(0, str(HERE))
    from trl_evidence import split_heldout

    versions = {
        "trl": trl.__version__,
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "datasets": datasets.__version__,
    }
    started = time.time()
    set_seed(int(s["train.seed"]))
    state = PartialState()
    on_gpu = torch.cuda.is_available() and not args.cpu
    bf16 = on_gpu and torch.cuda.is_bf16_supported() if s["train.bf16"] == "auto" else bool(s["train.bf16"])
    dtype = torch.bfloat16 if bf16 else torch.float32
    per_device, remainder = divmod(
        int(s["train.global_batch_size"]), int(s["train.accumulation_steps"]) * state.num_processes
    )
    if per_device < 1 or remainder:
        sys.exit(
            f"train.global_batch_size {s['train.global_batch_size']} is not a multiple of accumulation_steps x "
            f"processes ({s['train.accumulation_steps']} x {state.num_processes})"
        )

    tokenizer = AutoTokenizer.from_pretrained(s["models.student"], trust_remote_code=False)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    source = Path(s["data.source"])
    all_rows = read_rows(source if source.is_absolute() else HERE / source)
    rows, heldout = split_heldout(all_rows, int(s.get("data.heldout_rows", 0)), int(s["train.seed"]))
    common = dict(
        output_dir=str(out),
        per_device_train_batch_size=per_device,
        gradient_accumulation_steps=int(s["train.accumulation_steps"]),
        learning_rate=float(s["train.learning_rate"]),
        num_train_epochs=float(s["train.epochs"]),
        max_steps=args.max_steps or s["train.max_steps"] or -1,
        seed=int(s["train.seed"]),
        bf16=bf16,
        fp16=False,
        use_cpu=not on_gpu,
        gradient_checkpointing=bool(s["train.gradient_checkpointing"]),
        max_length=int(s["data.max_length"]),
        logging_steps=1,
        save_strategy="no",
        report_to="none",
    )
    built = build_trainer(s, common, rows, tokenizer, dtype, out, state)
    trainer = built.trainer
    trainer.train()
    require_steps(trainer.state.global_step, len(built.rows), int(s["train.global_batch_size"]))
    trainer.save_model(str(out / "student"))
    if state.is_main_process:
        tokenizer.save_pretrained(str(out / "student"))
        write_metrics(out, s, built, tokenizer, heldout, state, dtype, per_device, started, versions)
    return 0


class Built:
    """A trainer ready to train, and what building it found: the rows it trains on, the teacher's completion counts
    (sequence-level methods), the vocabulary alignment note and the teacher it holds (token-level methods). A plain
    class: tests load this script without registering it as a module, which a dataclass needs."""

    def __init__(
        self,
        trainer: Any,
        rows: Rows,
        counts: dict[str, int] | None = None,
        vocab_note: str | None = None,
        teacher_model: Any = None,
    ) -> None:
        self.trainer, self.rows = trainer, rows
        self.counts = counts if counts is not None else {}
        self.vocab_note, self.teacher_model = vocab_note, teacher_model


def build_trainer(
    s: dict[str, Any], common: dict[str, Any], rows: Rows, tokenizer: Any, dtype: Any, out: Path, state: Any
) -> Built:
    """The trainer distill.trainer names; its training arguments are built before any model loads (under
    DeepSpeed ZeRO-3 they make from_pretrained partition each model as it loads)."""
    trainer_name = s["distill.trainer"]
    if trainer_name == "SFTTrainer":
        return sft_trainer(s, common, rows, tokenizer, dtype, out, state)
    if trainer_name == "ServerDistillationTrainer":
        return server_trainer(s, common, rows, tokenizer, dtype)
    if trainer_name in ("DistillationTrainer", "GKDTrainer"):
        return teacher_trainer(trainer_name, s, common, rows, tokenizer, dtype)
    sys.exit(
        f"distill.trainer {trainer_name!r} is not one this script runs "
        "(DistillationTrainer, ServerDistillationTrainer, GKDTrainer, SFTTrainer)"
    )


def sft_trainer(
    s: dict[str, Any], common: dict[str, Any], rows: Rows, tokenizer: Any, dtype: Any, out: Path, state: Any
) -> Built:
    """Sequence-level KD: SFT on the teacher's completions, the missing ones written first by one process."""
    from datasets import Dataset
    from trl import SFTTrainer

    missing = sum(not r["completion"] for r in rows)
    if missing and state.num_processes > 1:
        sys.exit(
            f"{missing} rows need the teacher's completion: run once with one process (python train.py), then point "
            "data.source at run/teacher_completions.jsonl and launch on N processes"
        )
    rows, counts = complete_with_teacher(rows, s, dtype)
    if counts.get("written"):
        with (out / "teacher_completions.jsonl").open("w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(as_jsonl_row(r)) + "\n" for r in rows)
    # conversational for every row (TRL applies the chat template), as the teacher's prompts were formatted
    if tokenizer.chat_template is None:
        tokenizer.chat_template = PLAIN_CHAT_TEMPLATE
    examples = sft_examples(rows)
    args = build_training_args("SFTTrainer", s, common)  # before the student loads (ZeRO-3 partitions at load)
    trainer = SFTTrainer(
        model=load_model(s["models.student"], dtype),
        args=args,
        train_dataset=Dataset.from_list(examples),
        processing_class=tokenizer,
    )
    return Built(trainer, rows, counts)


def server_trainer(s: dict[str, Any], common: dict[str, Any], rows: Rows, tokenizer: Any, dtype: Any) -> Built:
    """On-policy KD against a served teacher: this process holds the student only."""
    from datasets import Dataset
    from trl.experimental.server_distillation import ServerDistillationTrainer

    check_same_tokenizer(s["models.teacher"], tokenizer)  # the served teacher's tokenizer files, read locally
    if tokenizer.chat_template is None:
        tokenizer.chat_template = PLAIN_CHAT_TEMPLATE
    tokenizer.padding_side = "left"
    rows = on_policy_rows(rows, tokenizer, s)
    # before the student loads (ZeRO-3 partitions at load)
    args = build_training_args("ServerDistillationTrainer", s, common)
    prompts = Dataset.from_list([{"prompt": prompt_turns(r)} for r in rows])
    trainer = ServerDistillationTrainer(
        model=load_model(s["models.student"], dtype), args=args, train_dataset=prompts, processing_class=tokenizer
    )
    return Built(trainer, rows)


def teacher_trainer(
    trainer_name: str, s: dict[str, Any], common: dict[str, Any], rows: Rows, tokenizer: Any, dtype: Any
) -> Built:
    """Token-level KD with the teacher in this process: DistillationTrainer (on-policy) or GKDTrainer."""
    from datasets import Dataset

    check_same_tokenizer(s["models.teacher"], tokenizer)
    if tokenizer.chat_template is None:
        tokenizer.chat_template = PLAIN_CHAT_TEMPLATE
    if trainer_name == "DistillationTrainer":
        tokenizer.padding_side = "left"  # DistillationTrainer generates from left-padded prompts
        rows = on_policy_rows(rows, tokenizer, s)
    # the training arguments first: under `accelerate launch` with DeepSpeed ZeRO-3 they create the live
    # HfDeepSpeedConfig that makes from_pretrained partition each model as it loads (zero.Init) instead of
    # materialising full copies of teacher and student on every rank
    args = build_training_args(trainer_name, s, common)
    student_model, teacher_model = load_model(s["models.student"], dtype), load_model(s["models.teacher"], dtype)
    vocab_note = align_vocab(student_model, teacher_model, tokenizer)
    # the two trainers take the same arguments; they differ in the rows they read: prompts (the student writes the
    # completions) or whole conversations (GKD mixes in the dataset's completions)
    trainer_class: Any
    if trainer_name == "DistillationTrainer":
        from trl import DistillationTrainer

        trainer_class, examples = DistillationTrainer, [{"prompt": prompt_turns(r)} for r in rows]
    else:
        from trl.experimental.gkd import GKDTrainer

        trainer_class = GKDTrainer
        examples = [
            {"messages": prompt_turns(r) + [{"role": "assistant", "content": r["completion"] or ""}]} for r in rows
        ]
    trainer = trainer_class(
        model=student_model,
        teacher_model=teacher_model,
        args=args,
        train_dataset=Dataset.from_list(examples),
        processing_class=tokenizer,
    )
    return Built(trainer, rows, vocab_note=vocab_note, teacher_model=teacher_model)


def write_metrics(
    out: Path,
    s: dict[str, Any],
    built: Built,
    tokenizer: Any,
    heldout: Rows,
    state: Any,
    dtype: Any,
    per_device: int,
    started: float,
    versions: dict[str, str],
) -> None:
    """Main process: metrics.json (steps, losses, versions), then the held-out generation evidence beside it."""
    from trl_evidence import write_generation_evidence

    trainer = built.trainer
    steps = [e for e in trainer.state.log_history if "loss" in e]
    metrics = {
        "method": s["distill.method"],
        "trainer": type(trainer).__name__,
        "steps": trainer.state.global_step,
        "processes": state.num_processes,
        "per_device_batch_size": per_device,
        "teacher_completions_written": built.counts.get("written", 0),
        "trace_counts": built.counts,
        "vocab_alignment": built.vocab_note,
        "heldout_rows": len(heldout),
        "loss": [{"step": e["step"], "loss": e["loss"]} for e in steps],
        "wall_time_s": round(time.time() - started, 2),
        "versions": versions,
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    print(json.dumps({k: metrics[k] for k in ("method", "trainer", "steps", "loss", "wall_time_s")}), flush=True)
    evidence_note, acceptance = write_evidence(
        out, s, trainer, built.teacher_model, tokenizer, heldout, state, dtype, write_generation_evidence
    )
    print(evidence_note, flush=True)
    if acceptance is not None:  # a draft model's figure of merit; a general proximity measure otherwise
        metrics["heldout_expected_acceptance_rate"] = acceptance
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")


def write_evidence(
    out: Path,
    s: dict[str, Any],
    trainer: Any,
    teacher: Any,
    tokenizer: Any,
    heldout: Rows,
    state: Any,
    dtype: Any,
    writer: Any,
) -> tuple[str, float | None]:
    """generation_evidence.json beside metrics.json: held-out scores of both models (one process, unsharded weights)."""
    import torch
    from transformers import AutoTokenizer

    if not heldout:
        return "generation evidence: skipped, no held-out rows (data.heldout_rows is 0 or the data has one row)", None
    if state.num_processes > 1 and state.distributed_type.name in ("FSDP", "DEEPSPEED"):
        return "generation evidence: skipped under sharded weights; score run/student with one process", None
    student = trainer.accelerator.unwrap_model(trainer.model)
    teacher_tokenizer = None
    if s["distill.trainer"] == "ServerDistillationTrainer":
        teacher = None  # never load a served teacher here: that is what the server is for; its scores stay null
    elif teacher is None and s["models.teacher"]:
        teacher = load_model(s["models.teacher"], dtype).to(student.device)
        teacher_tokenizer = AutoTokenizer.from_pretrained(s["models.teacher"], trust_remote_code=False)
        if teacher_tokenizer.pad_token is None:
            teacher_tokenizer.pad_token = teacher_tokenizer.eos_token
        if teacher_tokenizer.chat_template is None:
            teacher_tokenizer.chat_template = PLAIN_CHAT_TEMPLATE
    elif teacher is not None:
        teacher = trainer.accelerator.unwrap_model(getattr(trainer, "teacher_model", teacher))
    side, tokenizer.padding_side = tokenizer.padding_side, "right"
    if tokenizer.chat_template is None:
        tokenizer.chat_template = PLAIN_CHAT_TEMPLATE
    with torch.no_grad():
        evidence = writer(
            out / "generation_evidence.json",
            student,
            tokenizer,
            heldout,
            teacher=teacher,
            teacher_tokenizer=teacher_tokenizer,
            max_length=int(s["data.max_length"]),
            max_new_tokens=min(int(s["distill.max_new_tokens"]), 64),
        )
    tokenizer.padding_side = side
    acceptance = evidence.get("expected_acceptance_rate")
    return f"generation evidence: {json.dumps(evidence['heldout'])}, expected acceptance rate {acceptance}", acceptance


if __name__ == "__main__":
    sys.exit(main())
