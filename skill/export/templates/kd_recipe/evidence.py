"""What the run reports at its end: the student's weights, metrics.json, and what the release check reads
(predictions on the test set, per-class accuracy, sizes and speed). Everything here is bounded: at most `max_rows`
test rows of probabilities are kept (a seeded sample beyond that), the counts behind per-class accuracy always cover
the whole test set."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from kd_recipe.config import Config
from kd_recipe.data import length
from kd_recipe.distributed import Dist, atomic_write
from kd_recipe.teacher import split_outputs
from kd_recipe.weights import save_weights, size_of

SCHEMA_VERSION = 1


def kept_rows(n: int, max_rows: int, seed: int) -> np.ndarray:
    """The test rows whose probabilities are saved: all of them, or a seeded sample (the same on every rank)."""
    if n <= max_rows:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_rows, replace=False))


def evaluate(
    env: Dist, model: nn.Module, test: Dataset, batch: int, bins: int, classes: int, keep: np.ndarray
) -> tuple[dict[str, Any], np.ndarray | None]:
    """Accuracy, ECE, per-class accuracy and support over the whole test set (each rank scores rows rank::world,
    the counts are all-reduced), plus the probabilities of the kept rows, gathered on rank 0 (None elsewhere)."""
    rows = np.arange(env.rank, length(test), env.world)
    table = torch.zeros(3, bins, dtype=torch.float64)  # per confidence bin: count, sum of confidence, correct
    per_class = torch.zeros(2, classes, dtype=torch.float64)  # per true class: correct, support
    wrong = torch.zeros(2, dtype=torch.float64)  # errors: sum of their confidence, count
    kept_here: list[tuple[np.ndarray, np.ndarray]] = []
    wanted = np.isin(rows, keep)
    model.eval()
    start = 0
    with torch.no_grad():
        for x, y in DataLoader(Subset(test, rows.tolist()), batch_size=batch):
            y = y.long()
            logits, _ = split_outputs(model(x.to(env.device)))
            probs = F.softmax(logits.float()[:, :classes], dim=1).cpu()
            conf, pred = probs.max(1)
            hit = (pred == y).double()
            b = torch.clamp(
                torch.ceil(conf.double() * bins).long() - 1, 0, bins - 1
            )  # bin i holds (i/bins, (i+1)/bins]
            table[0].index_add_(0, b, torch.ones_like(hit))
            table[1].index_add_(0, b, conf.double())
            table[2].index_add_(0, b, hit)
            per_class[0].index_add_(0, y, hit)
            per_class[1].index_add_(0, y, torch.ones_like(hit))
            wrong += torch.stack([(conf.double() * (1 - hit)).sum(), (1 - hit).sum()])
            mask = wanted[start : start + len(y)]
            if mask.any():
                kept_here.append((rows[start : start + len(y)][mask], probs.numpy()[mask]))
            start += len(y)
    totals = env.sum([*table.flatten().tolist(), *per_class.flatten().tolist(), *wrong.tolist()])
    table = torch.tensor(totals[: 3 * bins], dtype=torch.float64).view(3, bins)
    per_class = torch.tensor(totals[3 * bins : 3 * bins + 2 * classes], dtype=torch.float64).view(2, classes)
    wrong_conf, wrong_count = totals[-2], totals[-1]
    count = float(table[0].sum())
    filled = table[0] > 0
    gap = (table[2][filled] / table[0][filled] - table[1][filled] / table[0][filled]).abs()
    result = {
        "accuracy": float(per_class[0].sum()) / count,
        "ece": float((table[0][filled] / count * gap).sum()),
        "test_rows": int(count),
        "per_class_accuracy": {
            str(c): float(per_class[0, c] / per_class[1, c]) for c in range(classes) if per_class[1, c] > 0
        },
        "class_support": {str(c): int(per_class[1, c]) for c in range(classes)},
        "error_confidence": wrong_conf / wrong_count if wrong_count else None,
    }
    everyone = env.gather(kept_here)
    if not env.main:
        return result, None
    probs_kept = np.zeros((len(keep), classes), np.float32)
    position = {int(r): i for i, r in enumerate(keep)}
    for part in everyone:
        for row_ids, p in part:
            probs_kept[[position[int(r)] for r in row_ids]] = p
    return result, probs_kept


def speed(model: nn.Module, test: Dataset, batch: int, device: torch.device, repeats: int = 30) -> dict[str, Any]:
    """Median latency of one sample at batch 1 and samples per second at `batch`, on the run's device, after a
    warm-up (the first calls allocate). Medians, because one descheduled call on a shared machine is an outlier."""
    rows = [i % length(test) for i in range(batch)]
    big = torch.stack([torch.as_tensor(test[i][0]) for i in rows]).to(device)
    one = big[:1]

    def timed(x: torch.Tensor, n: int) -> float:
        times = []
        for _ in range(n):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            model(x)
            if device.type == "cuda":
                torch.cuda.synchronize(device)  # CUDA calls return before the work is done
            times.append(time.perf_counter() - t0)
        return float(np.median(times))

    model.eval()
    with torch.no_grad():
        timed(one, 5)
        latency = timed(one, repeats)
        timed(big, 2)
        per_batch = timed(big, max(3, repeats // 6))
    return {
        "latency_ms_batch1": latency * 1000,
        "throughput_per_s": batch / per_batch,
        "throughput_batch": batch,
        "device": str(device.type),
    }


def write(
    out: Path, labels: np.ndarray, probs: dict[str, np.ndarray], groups: np.ndarray | None, summary: dict[str, Any]
) -> None:
    """predictions.npz (labels, <model>_probs, groups) and evidence.json, each atomically; rank 0 only."""
    # Any: numpy's stub lets ** fill savez_compressed's allow_pickle flag too, so arrays there do not type-check
    arrays: dict[str, Any] = {"labels": labels.astype(np.int64)}
    arrays.update({f"{name}_probs": p.astype(np.float32) for name, p in probs.items()})
    if groups is not None:
        arrays["groups"] = groups.astype(str)  # a unicode array: readable with allow_pickle=False

    def save(tmp: Path) -> None:
        with tmp.open("wb") as handle:
            np.savez_compressed(handle, **arrays)

    atomic_write(out / "predictions.npz", save)
    document = {"kind": "classification", "schema_version": SCHEMA_VERSION, **summary}
    atomic_write(out / "evidence.json", lambda tmp: tmp.write_text(json.dumps(document, indent=1), encoding="utf-8"))


def write_run(
    out: Path,
    test: Dataset,
    keep: np.ndarray,
    groups: np.ndarray | None,
    scored: dict[str, dict[str, Any]],
    probs: dict[str, np.ndarray],
    models: Mapping[str, nn.Module | None],
    device: torch.device,
    batch: int,
    settings: dict[str, Any],
) -> None:
    """Rank 0: predictions.npz and evidence.json (per-class accuracy, sizes, speed, the size curve) for the release
    check."""
    labels = (
        test.tensors[1][keep].numpy()
        if isinstance(test, TensorDataset)
        else np.array([int(test[int(i)][1]) for i in keep])
    )
    described: dict[str, Any] = {}
    for name, model in models.items():
        if model is None:
            continue
        described[name] = {**scored[name], **size_of(model)}
        if name in ("teacher", "student", "baseline"):  # timed on this device; the curve's extra sizes are not
            described[name].update(speed(model, test, batch, device))
    curve = [
        {"name": name, "params": described[name]["params"], "accuracy": described[name]["accuracy"]}
        for name in described
        if name == "student" or name.startswith("student-w")
    ]
    write(
        out,
        labels,
        probs,
        groups[keep] if groups is not None else None,
        {
            "test_rows": length(test),
            "classes": len(next(iter(probs.values()))[0]) if probs else None,
            "predictions": {
                "file": "predictions.npz",
                "rows": int(len(keep)),
                "sampled": bool(len(keep) < length(test)),
                "groups": settings.get("groups"),
            },
            "models": described,
            "size_accuracy_curve": curve,
            "settings": settings,
        },
    )


def report(
    cfg: Config,
    env: Dist,
    out: Path,
    test: Dataset,
    groups: np.ndarray | None,
    classes: int,
    plan: dict[str, Any],
    models: dict[str, nn.Module],
    phases: dict[str, Any],
    losses_from: str,
) -> dict[str, Any]:
    """Every model scored on the whole test set; rank 0 writes the student, metrics.json and the release evidence."""
    # keep at most this many test rows of probabilities: what one release check may read (a seeded sample beyond)
    limit = max(1, min(cfg.eval_max_prediction_rows, cfg.eval_max_prediction_values // (2 * classes)))
    keep = kept_rows(length(test), limit, cfg.train_seed)
    scored: dict[str, dict[str, Any]] = {}
    probs: dict[str, np.ndarray] = {}
    for name, model in models.items():
        scored[name], kept = evaluate(env, model, test, cfg.train_global_batch_size, cfg.eval_ece_bins, classes, keep)
        if kept is not None and name in ("teacher", "student", "baseline"):
            probs[name] = kept
    sizes = {name: size_of(models[name])["params"] for name in ("teacher", "student")}
    brief = {name: {k: m[k] for k in ("accuracy", "ece", "test_rows")} for name, m in scored.items()}
    metrics = {
        "world_size": env.world,
        "backend": env.backend,
        "device": env.device.type,
        "losses_from": losses_from,
        "global_batch_size": cfg.train_global_batch_size,
        "accumulation_steps": cfg.train_accumulation_steps,
        "teacher": {"params": sizes["teacher"], **brief["teacher"]},
        "student": {"params": sizes["student"], **brief["student"]},
        "baseline": brief.get("baseline"),
        "compression_ratio": sizes["teacher"] / sizes["student"],
        "phases": phases,
    }
    if "baseline" in scored:
        metrics["gain_points"] = (scored["student"]["accuracy"] - scored["baseline"]["accuracy"]) * 100
    if env.main:
        save_weights(models["student"], out / "student.safetensors")
        text = json.dumps(metrics, indent=1)
        atomic_write(out / "metrics.json", lambda tmp: tmp.write_text(text, encoding="utf-8"))
        settings = {
            "groups": cfg.data_groups,
            "method": cfg.distill_method,
            "temperature": cfg.distill_temperature,
            "kd_loss_weight": cfg.distill_kd_loss_weight,
            "epochs": cfg.train_epochs,
            "student_sizes": cfg.train_student_sizes,
            "world_size": env.world,
            **plan,
            "class_names": getattr(test, "class_names", None),
        }
        write_run(out, test, keep, groups, scored, probs, models, env.device, cfg.eval_throughput_batch, settings)
    return metrics
