"""Held-out generation evidence for a distilled language model, written at the end of train.py.

Why: a loss curve says the student fit the training batches; the release check needs to know how close the
student is to the teacher on text the training never saw. This file scores a held-out split with both models
(NLL per completion token, KL from teacher to student over the shared vocabulary, greedy next-token
agreement), writes a few completions side by side, and the models' sizes, into generation_evidence.json:

    {"kind": "generation", "schema_version": 1,
     "heldout": {"n_sequences", "n_tokens", "student_nll_per_token", "teacher_nll_per_token",
                 "token_kl_teacher_to_student", "greedy_next_token_agreement", "same_tokenizer"},
     "samples": [{"prompt", "teacher", "student"}],          # at most MAX_SAMPLES, strings capped at MAX_CHARS
     "models": {"student_params", "teacher_params", "student_bytes", "teacher_bytes"}}

The returned dict also carries, outside the file's fixed shape, the expected speculative-decoding acceptance
rate at T = 1 (mean over held-out positions of sum_v min(p_student, p_teacher) = 1 - total variation distance,
Leviathan et al. 2023): the number a draft model is judged by; train.py puts it in metrics.json.

Bounded: at most the held-out rows the config allows, each cut to data.max_length tokens. Teacher values are
null when there is no local teacher (an API teacher); KL and agreement are null when the tokenizers differ
(there is no shared vocabulary to compare over).
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
MAX_SAMPLES = 8
MAX_CHARS = 2000


Rows = list[dict[str, Any]]


def split_heldout(rows: Rows, n_heldout: int, seed: int) -> tuple[Rows, Rows]:
    """(train, heldout): a seeded random n_heldout rows are kept out of training; at least one row always trains."""
    n_heldout = max(0, min(n_heldout, len(rows) - 1))
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    held = set(order[:n_heldout])
    return [r for i, r in enumerate(rows) if i not in held], [r for i, r in enumerate(rows) if i in held]


def model_size(model: Any) -> tuple[int, int]:
    """(parameters, bytes) of the weights as held in memory; tied weights count once (parameters() dedups them)."""
    params = sizes = 0
    for p in model.parameters():
        params += p.numel()
        sizes += p.numel() * p.element_size()
    return int(params), int(sizes)


def _prompt_text(tokenizer: Any, row: dict[str, Any]) -> str:
    """The prompt as the model saw it in training: through the chat template when the row has turns or one is set."""
    turns = row.get("prompt_messages") or [{"role": "user", "content": row["prompt"]}]
    if tokenizer.chat_template:
        return tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
    return row["prompt"]


def _ids(tokenizer: Any, row: dict[str, Any], completion: str, max_length: int) -> tuple[list[int], int]:
    """Token ids of prompt + completion (prompt cut from the left) and where the completion starts."""
    prompt = tokenizer(_prompt_text(tokenizer, row), add_special_tokens=False)["input_ids"]
    answer = tokenizer(completion, add_special_tokens=False)["input_ids"][: max_length - 1]
    prompt = prompt[-(max_length - len(answer)) :] if max_length - len(answer) > 0 else []
    return prompt + answer, len(prompt)


def _generate(model: Any, tokenizer: Any, row: dict[str, Any], max_new_tokens: int) -> str:
    """Greedy completion (the model's most likely answer) for a side-by-side sample."""
    import torch

    inputs = tokenizer(_prompt_text(tokenizer, row), return_tensors="pt", add_special_tokens=False).to(model.device)
    with torch.no_grad():
        out = model.generate(
            **inputs, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id
        )
    return tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)[:MAX_CHARS]


def _nll_sum(logits: Any, ids: Any, start: int) -> tuple[float, int]:
    """Sum of -log p(token) over the completion positions, with the model's full softmax."""
    import torch

    logp = torch.log_softmax(logits[0, start - 1 : -1].float(), dim=-1)
    target = ids[0, start:]
    return float(-logp.gather(-1, target[:, None]).sum()), int(target.numel())


def write_generation_evidence(
    path: Path,
    student: Any,
    tokenizer: Any,
    heldout: Rows,
    *,
    teacher: Any = None,
    teacher_tokenizer: Any = None,
    max_length: int = 1024,
    max_new_tokens: int = 64,
) -> dict[str, Any]:
    """Score the held-out rows with both models and write the evidence file; returns what it wrote."""
    import torch

    same_vocab = teacher is not None and (
        teacher_tokenizer is None or teacher_tokenizer.get_vocab() == tokenizer.get_vocab()
    )
    teacher_tokenizer = teacher_tokenizer or tokenizer
    models = [m for m in (student, teacher) if m is not None]
    modes = [m.training for m in models]
    for m in models:
        m.eval()
    s_nll = t_nll = kl = accept = 0.0
    agree = n_tokens = t_tokens = n_seq = 0
    samples: list[dict[str, Any]] = []
    with torch.no_grad():
        for row in heldout:
            completion = row.get("completion")
            if not completion and teacher is not None:  # no reference text: the teacher's greedy answer is scored
                completion = _generate(teacher, teacher_tokenizer, row, max_new_tokens)
            completion = completion or ""
            ids, start = _ids(tokenizer, row, completion, max_length)
            if start < 1 or start >= len(ids):  # nothing to score: an empty completion or a prompt cut away
                continue
            ids_t = torch.tensor([ids], device=student.device)
            s_logits = student(input_ids=ids_t).logits
            nll, count = _nll_sum(s_logits, ids_t, start)
            s_nll, n_tokens, n_seq = s_nll + nll, n_tokens + count, n_seq + 1
            if teacher is not None and same_vocab:
                t_logits = teacher(input_ids=ids_t.to(teacher.device)).logits.to(s_logits.device)
                nll, _ = _nll_sum(t_logits, ids_t, start)
                t_nll, t_tokens = t_nll + nll, t_tokens + count
                shared = min(s_logits.shape[-1], t_logits.shape[-1])  # padded rows beyond the smaller head are no token
                s_log = torch.log_softmax(s_logits[0, start - 1 : -1, :shared].float(), dim=-1)
                t_log = torch.log_softmax(t_logits[0, start - 1 : -1, :shared].float(), dim=-1)
                kl += float((t_log.exp() * (t_log - s_log)).sum())
                accept += float(torch.minimum(t_log.exp(), s_log.exp()).sum())
                agree += int((s_log.argmax(-1) == t_log.argmax(-1)).sum())
            elif teacher is not None:  # another tokenizer: the teacher's NLL per its own tokens
                tid, tstart = _ids(teacher_tokenizer, row, completion, max_length)
                if 1 <= tstart < len(tid):
                    tid_t = torch.tensor([tid], device=teacher.device)
                    nll, count_t = _nll_sum(teacher(input_ids=tid_t).logits, tid_t, tstart)
                    t_nll, t_tokens = t_nll + nll, t_tokens + count_t
            if len(samples) < MAX_SAMPLES:
                said = _generate(teacher, teacher_tokenizer, row, max_new_tokens) if teacher is not None else ""
                samples.append(
                    {
                        "prompt": row["prompt"][:MAX_CHARS],
                        "teacher": said,
                        "student": _generate(student, tokenizer, row, max_new_tokens),
                    }
                )
    for m, mode in zip(models, modes, strict=True):
        m.train(mode)

    def ratio(num: float, den: int, ok: bool = True) -> float | None:
        return round(num / den, 6) if ok and den and math.isfinite(num / den) else None

    s_params, s_bytes = model_size(student)
    t_params, t_bytes = model_size(teacher) if teacher is not None else (None, None)
    evidence = {
        "kind": "generation",
        "schema_version": SCHEMA_VERSION,
        "heldout": {
            "n_sequences": n_seq,
            "n_tokens": n_tokens,
            "student_nll_per_token": ratio(s_nll, n_tokens),
            "teacher_nll_per_token": ratio(t_nll, t_tokens, teacher is not None),
            "token_kl_teacher_to_student": ratio(kl, n_tokens, same_vocab),
            "greedy_next_token_agreement": ratio(agree, n_tokens, same_vocab),
            "same_tokenizer": same_vocab if teacher is not None else None,  # null: no local teacher to compare
        },
        "samples": samples,
        "models": {
            "student_params": s_params,
            "teacher_params": t_params,
            "student_bytes": s_bytes,
            "teacher_bytes": t_bytes,
        },
    }
    path.write_text(json.dumps(evidence, indent=2), encoding="utf-8")
    return {**evidence, "expected_acceptance_rate": ratio(accept, n_tokens, same_vocab)}
