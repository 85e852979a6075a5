#!/usr/bin/env python
"""Distil a teacher into a student with PyTorch DDP, launched by torchrun. Written by `kd-skill export`.

    torchrun --standalone --nproc_per_node 2 train.py            # see README.md for 1 GPU, N GPUs, several nodes
    python train.py                                               # one process works too

Settings come from config.yaml beside this file (each with its reason); flags override a few. The run writes
student.safetensors and metrics.json into --output-dir, checkpoints every epoch (rank 0, atomically) and
resumes from the last checkpoint when started again. Bad settings stop it with one line naming the setting.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset, TensorDataset

HERE = Path(__file__).resolve().parent
try:  # the package's own losses and nets when it is installed, else the copies exported beside this file
    from skill.distill import losses, nets

    LOSSES_FROM = "skill.distill.losses"
except ImportError:
    sys.path.insert(0, str(HERE))
    from kd_vendor import losses, nets  # type: ignore[no-redef]

    LOSSES_FROM = "kd_vendor/losses.py"


class RecipeError(ValueError):
    """A bad setting or input: reported as one line naming it, exit status 2."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")


# ---- settings ---------------------------------------------------------------------------------


def load_config(path: Path) -> dict[str, Any]:
    """config.yaml holds {section: {name: {value, why, evidence}}}; flatten to {"section.name": value}."""
    import yaml

    if not path.is_file():
        raise RecipeError("--config", f"{path} does not exist")
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    flat: dict[str, Any] = {}
    for section, entries in raw.items():
        if isinstance(entries, dict):
            for name, leaf in entries.items():
                flat[f"{section}.{name}"] = leaf["value"] if isinstance(leaf, dict) and "value" in leaf else leaf
    return flat


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", type=Path, default=HERE / "config.yaml")
    p.add_argument("--output-dir", type=Path, default=None, help="Where checkpoints, student.safetensors and metrics.json go (default: run/ beside train.py)")
    p.add_argument("--epochs", type=int, default=None, help="Student epochs (overrides train.epochs)")
    p.add_argument("--teacher-epochs", type=int, default=None, help="Epochs when the teacher is trained here first")
    p.add_argument("--accumulation-steps", type=int, default=None, help="Micro-batches per optimizer step (overrides train.accumulation_steps)")
    p.add_argument("--baseline", action="store_true", default=None, help="Also train a from-scratch student (same budget)")
    p.add_argument("--no-resume", action="store_true", help="Ignore existing checkpoints and start over")
    p.add_argument("--cpu", action="store_true", help="Stay on the CPU (gloo) even when GPUs are present")
    return p.parse_args(argv)


# ---- distributed setup -----------------------------------------------------------------------


class Dist:
    """Rank, world size and device; gloo on CPU and nccl on GPU, chosen from what the machine has."""

    def __init__(self, force_cpu: bool) -> None:
        self.rank = int(os.environ.get("RANK", 0))
        self.world = int(os.environ.get("WORLD_SIZE", 1))
        self.local_rank = int(os.environ.get("LOCAL_RANK", 0))
        self.cuda = torch.cuda.is_available() and not force_cpu
        self.device = torch.device(f"cuda:{self.local_rank}") if self.cuda else torch.device("cpu")
        self.backend = "nccl" if self.cuda else "gloo"
        if self.cuda:
            torch.cuda.set_device(self.device)
        if self.world > 1:
            dist.init_process_group(self.backend)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum over ranks (float64 so counts stay exact)."""
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        if self.world > 1:
            dist.all_reduce(t)
        return t.tolist()

    def gather(self, obj: Any) -> list[Any]:
        if self.world == 1:
            return [obj]
        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def close(self) -> None:
        if self.world > 1:
            dist.destroy_process_group()


def log(env: Dist, message: str, record: dict[str, Any] | None = None, path: Path | None = None) -> None:
    """Only rank 0 speaks: one line on stdout and, with a record, one JSON line in log.jsonl."""
    if not env.main:
        return
    print(message, flush=True)
    if record is not None and path is not None:
        with (path / "log.jsonl").open("a", encoding="utf-8") as handle:
            handle.write(json.dumps({"time": round(time.time(), 3), **record}) + "\n")


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write to a temporary name and rename: a crash never leaves half a checkpoint or weight file."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


# ---- data --------------------------------------------------------------------------------------


def import_object(spec: str, field: str) -> Any:
    """'package.module:name' -> the object; one line naming the setting when it cannot be found."""
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise RecipeError(field, f"cannot import {module_name!r} ({exc}); put its folder on PYTHONPATH") from exc
    if not hasattr(module, attr):
        raise RecipeError(field, f"module {module_name!r} has no attribute {attr!r}")
    return getattr(module, attr)


def _tensor_split(X: np.ndarray, y: np.ndarray, name: str) -> TensorDataset:
    X = np.asarray(X)
    X = X.reshape(len(X), -1).astype(np.float32) if X.ndim != 2 else X.astype(np.float32)
    y = np.asarray(y).reshape(-1)
    if len(X) != len(y):
        raise RecipeError("data.source", f"{name}: {len(X)} inputs but {len(y)} labels")
    if not np.isfinite(X).all():
        raise RecipeError("data.source", f"{name} contains NaN or infinity")
    return TensorDataset(torch.from_numpy(X), torch.from_numpy(y.astype(np.int64)))


def _read_csv(path: Path, label_column: str | None, test_fraction: float, seed: int) -> tuple[TensorDataset, TensorDataset]:
    import csv

    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], rows[1:]
    column = label_column if label_column is not None else header[-1]
    if column not in header:
        raise RecipeError("data.label_column", f"{column!r} is not a column of {path.name}")
    j = header.index(column)
    try:
        X = np.array([[float(v) for i, v in enumerate(r) if i != j] for r in body], dtype=np.float32)
    except ValueError as exc:  # a text feature, or a ragged row
        raise RecipeError("data.source", f"{path.name}: every feature column must be numeric ({exc})") from exc
    # numeric labels in numeric order (2 before 10), as the quick distill maps them; text labels after, alphabetically
    classes = sorted({r[j] for r in body}, key=lambda v: (not v.lstrip("-").isdigit(), int(v) if v.lstrip("-").isdigit() else 0, v))
    y = np.array([classes.index(r[j]) for r in body], dtype=np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    cut = int(round(len(y) * test_fraction))
    test, train = order[:cut], order[cut:]
    return _tensor_split(X[train], y[train], "train"), _tensor_split(X[test], y[test], "test")


def load_data(cfg: dict[str, Any]) -> tuple[Dataset, Dataset]:
    """The train and test splits as torch Datasets of (input, label)."""
    source = str(cfg["data.source"])
    if ":" in source and not source.endswith((".npz", ".csv")):
        factory = import_object(source, "data.source")
        return factory("train"), factory("test")
    path = Path(source)
    if not path.is_absolute():
        path = HERE / path
    if not path.is_file():
        raise RecipeError("data.source", f"{path} does not exist")
    if path.suffix == ".csv":
        return _read_csv(path, cfg.get("data.label_column"), float(cfg.get("data.test_fraction", 0.25)), int(cfg["train.seed"]))
    with np.load(path, allow_pickle=False) as archive:  # plain arrays only: a pickle is code
        missing = [k for k in ("X_train", "y_train", "X_test", "y_test") if k not in archive.files]
        if missing:
            raise RecipeError("data.source", f"{path.name} lacks {', '.join(missing)}")
        return _tensor_split(archive["X_train"], archive["y_train"], "train"), _tensor_split(archive["X_test"], archive["y_test"], "test")


class Batches:
    """Micro-batches of (inputs, labels, row indices) in the sampler's order. In-memory arrays are sliced
    directly (a DataLoader would collate row by row); any other Dataset goes through a DataLoader."""

    def __init__(self, data: Dataset, sampler: DistributedSampler, batch: int, workers: int, pin: bool) -> None:
        self.data, self.sampler, self.batch = data, sampler, batch
        self.loader = None if isinstance(data, TensorDataset) else DataLoader(
            Indexed(data), batch_size=batch, sampler=sampler, num_workers=workers, pin_memory=pin)

    def __len__(self) -> int:
        return -(-len(self.sampler) // self.batch)

    def __iter__(self):  # type: ignore[no-untyped-def]
        if self.loader is not None:
            yield from self.loader
            return
        X, y = self.data.tensors  # type: ignore[attr-defined]
        rows = torch.tensor(list(iter(self.sampler)), dtype=torch.long)
        for start in range(0, len(rows), self.batch):
            index = rows[start : start + self.batch]
            yield X[index], y[index], index


class Indexed(Dataset):
    """Yields (input, label, row index) so cached teacher logits can be looked up by row."""

    def __init__(self, base: Dataset) -> None:
        self.base = base

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> tuple[Any, Any, int]:
        x, y = self.base[i]
        return x, y, i


def data_shape(train: Dataset, cfg: dict[str, Any]) -> tuple[int, int]:
    """(input features, classes): classes from the config when given, else from the training labels."""
    x0 = train[0][0]
    features = int(torch.as_tensor(x0).numel())
    if cfg.get("data.num_classes"):
        return features, int(cfg["data.num_classes"])
    if isinstance(train, TensorDataset):
        return features, int(train.tensors[1].max()) + 1
    return features, int(max(int(train[i][1]) for i in range(len(train)))) + 1  # type: ignore[arg-type]


# ---- models ------------------------------------------------------------------------------------


def build_model(role: str, cfg: dict[str, Any], features: int, classes: int) -> nn.Module:
    """A runner net ('mlp' / 'cnn' with hidden sizes) or the user's factory()."""
    kind = str(cfg[f"{role}.model"])
    if kind in ("mlp", "cnn"):
        side = int(round(features**0.5))
        if kind == "cnn" and side * side != features:
            raise RecipeError(f"{role}.model", f"cnn needs square single-channel images; the data has {features} features")
        return nets.build(kind, features, list(cfg[f"{role}.hidden"]), classes, side if kind == "cnn" else None)
    model = import_object(kind, f"{role}.model")()
    if not isinstance(model, nn.Module):
        raise RecipeError(f"{role}.model", f"{kind} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def probe_outputs(role: str, model: nn.Module, train: Dataset, classes: int) -> None:
    """One forward pass on one training row, so a model that does not fit the data fails here in one line."""
    x = torch.as_tensor(train[0][0]).unsqueeze(0)
    try:
        with torch.no_grad():
            logits, _ = split_outputs(model.eval()(x))
    except Exception as exc:  # any failure of the user's forward on the data's shape
        raise RecipeError(f"{role}.model", f"fails on one training input of shape {tuple(x.shape)}: {str(exc).splitlines()[0][:200]}") from exc
    model.train()
    if logits.dim() != 2 or logits.shape[1] < classes:
        raise RecipeError(f"{role}.model", f"returns outputs of shape {tuple(logits.shape)}; expected (batch, {classes}) logits for {classes} classes")


def params_of(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def load_weights(model: nn.Module, path_value: str, field: str) -> None:
    from safetensors.torch import load_file

    path = Path(path_value) if Path(path_value).is_absolute() else HERE / path_value
    if not path.is_file():
        raise RecipeError(field, f"{path} does not exist")
    try:
        model.load_state_dict(load_file(str(path)))
    except Exception as exc:  # wrong keys or shapes
        raise RecipeError(field, f"{path.name} does not fit the model: {str(exc).splitlines()[0][:200]}") from exc


def split_outputs(out: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Logits and (when the model returns a tuple, as the runner's nets do) its features."""
    if isinstance(out, (tuple, list)):
        return out[0], out[1] if len(out) > 1 and isinstance(out[1], torch.Tensor) else None
    return out, None


class Distiller(nn.Module):
    """The student plus what trains with it (a FitNets regressor), so DDP syncs every trained weight."""

    def __init__(self, student: nn.Module, regressor: nn.Module | None) -> None:
        super().__init__()
        self.student = student
        self.regressor = regressor

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        logits, feat = split_outputs(self.student(x))
        projected = self.regressor(feat) if self.regressor is not None and feat is not None else None
        return logits, feat, projected


# ---- the teacher's signal ----------------------------------------------------------------------


class TeacherSignal:
    """The frozen teacher: run in eval() under no_grad, or read from logits cached to disk in a first pass."""

    def __init__(self, model: nn.Module, cached: torch.Tensor | None) -> None:
        self.model = model.eval().requires_grad_(False)
        self.cached = cached

    def __call__(self, x: torch.Tensor, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.cached is not None:
            return self.cached[index.to(self.cached.device)].float(), None
        with torch.no_grad():
            logits, feat = split_outputs(self.model(x))
        return logits.float(), feat


def cache_teacher_logits(env: Dist, teacher: nn.Module, train: Dataset, out: Path, batch: int) -> torch.Tensor:
    """Each rank computes rows rank::world once, saves them as float16, then every rank reads all shards.
    The folder is named by a hash of the teacher's weights, so a retrained teacher never reads stale logits."""
    digest = hashlib.sha256()
    for tensor in teacher.state_dict().values():
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    folder = out / "teacher_logits" / digest.hexdigest()[:16]
    if env.main:
        folder.mkdir(parents=True, exist_ok=True)
    env.barrier()
    n = len(train)  # type: ignore[arg-type]
    mine = folder / f"rank{env.rank}of{env.world}.npz"
    if not mine.is_file():
        rows = list(range(env.rank, n, env.world))
        loader = DataLoader(Subset(train, rows), batch_size=batch, shuffle=False)
        parts = []
        teacher.eval()
        with torch.no_grad():
            for x, _ in loader:
                parts.append(split_outputs(teacher(x.to(env.device)))[0].float().cpu())
        logits = np.clip(torch.cat(parts).numpy(), -6e4, 6e4).astype(np.float16)  # float16 tops out at 65504

        def save(tmp: Path) -> None:
            with tmp.open("wb") as handle:  # a file object: np.savez would append .npz to a path
                np.savez(handle, rows=np.array(rows, np.int64), logits=logits)

        atomic_write(mine, save)
    env.barrier()
    full: np.ndarray | None = None
    for r in range(env.world):
        with np.load(folder / f"rank{r}of{env.world}.npz", allow_pickle=False) as part:
            if full is None:
                full = np.zeros((n, part["logits"].shape[1]), np.float16)
            full[part["rows"]] = part["logits"]
    assert full is not None
    return torch.from_numpy(full).to(env.device)


# ---- one training phase ------------------------------------------------------------------------


def distill_loss(cfg: dict[str, Any], logits: torch.Tensor, feat: torch.Tensor | None, projected: torch.Tensor | None,
                 y: torch.Tensor, t_logits: torch.Tensor, t_feat: torch.Tensor | None) -> torch.Tensor:
    """(1 - w) * CE + w * soft term (times T^2), plus the relation or hint term of the method."""
    T, w, method = float(cfg["distill.temperature"]), float(cfg["distill.kd_loss_weight"]), cfg["distill.method"]
    ce = F.cross_entropy(logits, y)
    if cfg["distill.response_loss"] == "dkd":
        soft = losses.dkd_loss(logits, t_logits, y, T, float(cfg["distill.dkd_alpha"]), float(cfg["distill.dkd_beta"]))
    else:
        soft = losses.kd_loss(logits, F.softmax(t_logits / T, dim=1), T)
    loss = (1 - w) * ce + w * soft
    if method == "relation":
        s, t = (feat if feat is not None else logits), (t_feat if t_feat is not None else t_logits)
        if cfg["distill.relation_loss"] == "rkd":
            loss = loss + float(cfg["distill.rkd_distance_weight"]) * losses.rkd_distance(s, t) + float(cfg["distill.rkd_angle_weight"]) * losses.rkd_angle(s, t)
        else:
            loss = loss + float(cfg["distill.sp_weight"]) * losses.similarity_preserving(s, t)
    elif method == "feature" and projected is not None and t_feat is not None:
        loss = loss + float(cfg["distill.hint_loss_weight"]) * losses.fitnet_hint(projected, t_feat)
    return loss


def shard_record(env: Dist, sampler: DistributedSampler, epoch: int, n: int) -> dict[str, Any]:
    """Proof of disjoint shards: each rank's row count and hash, and the rows two ranks share (0 expected)."""
    rows = list(iter(sampler))
    digest = hashlib.sha256(np.array(sorted(rows), np.int64).tobytes()).hexdigest()[:16]
    everyone = env.gather(rows if n <= 2_000_000 else None)
    overlap = None
    if all(r is not None for r in everyone):
        seen = np.concatenate([np.asarray(r, np.int64) for r in everyone])
        overlap = int(len(seen) - len(np.unique(seen)))
    return {"epoch": epoch, "rank_rows": env.gather(len(rows)), "rank_sha256": env.gather(digest), "overlap": overlap, "dataset_rows": n}


def fit(phase: str, env: Dist, cfg: dict[str, Any], model: Distiller, train: Dataset, epochs: int,
        teacher: TeacherSignal | None, out: Path, resume: bool) -> dict[str, Any]:
    """Train `model` for `epochs` (CE only when teacher is None); checkpoint each epoch; resume when asked."""
    world, accum, global_batch = env.world, int(cfg["train.accumulation_steps"]), int(cfg["train.global_batch_size"])
    micro = global_batch // (world * accum)  # checked in main: the global batch is the same for any world size
    seed = int(cfg["train.seed"])
    model.to(env.device)
    ddp = DDP(model, device_ids=[env.local_rank] if env.cuda else None) if world > 1 else model
    optimizer = torch.optim.Adam(model.parameters(), lr=float(cfg["train.learning_rate"]))
    amp_dtype = None
    if env.cuda and cfg.get("train.amp", "auto") == "auto":
        amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    ckpt = out / f"checkpoint-{phase}.pt"
    state: dict[str, Any] = {"epoch": 0, "loss_history": [], "epoch_seconds": [], "shards": []}
    resumed_from = 0
    if resume and ckpt.is_file():
        saved = torch.load(ckpt, map_location=env.device, weights_only=True)  # tensors and plain values only, never code
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scaler.load_state_dict(saved["scaler"])
        state = saved["state"]
        resumed_from = int(state["epoch"])
        log(env, f"[{phase}] resumed from {ckpt.name} at epoch {resumed_from}", {"phase": phase, "event": "resumed", "epoch": resumed_from}, out)
    sampler = DistributedSampler(train, num_replicas=world, rank=env.rank, shuffle=True, seed=seed, drop_last=True)
    loader = Batches(train, sampler, micro, int(cfg.get("train.workers", 0)), env.cuda)
    steps = -(-len(loader) // accum)
    first = state["epoch"]
    for epoch in range(first, epochs):
        t0 = time.perf_counter()
        sampler.set_epoch(epoch)  # a new shuffle each epoch, the same on every rank, so shards stay disjoint
        torch.manual_seed(seed + 1000 * epoch + env.rank)  # dropout / augmentation draws survive a resume
        if epoch == first:  # once per run and phase: enough to show the split, cheap for any size
            shards = shard_record(env, sampler, epoch, len(train))  # type: ignore[arg-type]
            state["shards"].append(shards)
            log(env, f"[{phase}] epoch {epoch} shards: rows {shards['rank_rows']} sha256 {shards['rank_sha256']} overlap {shards['overlap']}",
                {"phase": phase, "event": "shards", **shards}, out)
        ddp.train()
        if teacher is not None:
            teacher.model.eval()  # frozen: batch-norm statistics and dropout stay as trained
        loss_sum, seen = torch.zeros((), dtype=torch.float64, device=env.device), 0  # summed on the device: no sync per step
        for i, (x, y, index) in enumerate(loader):
            x, y = x.to(env.device, non_blocking=True), y.to(env.device, non_blocking=True)
            group = i // accum
            group_size = accum if group < steps - 1 else len(loader) - group * accum
            last_in_group = (i + 1) % accum == 0 or i + 1 == len(loader)
            sync = contextlib.nullcontext() if last_in_group or world == 1 else ddp.no_sync()  # all-reduce once per step
            with sync:
                with torch.autocast("cuda", dtype=amp_dtype) if amp_dtype else contextlib.nullcontext():
                    logits, feat, projected = ddp(x)
                    if teacher is None:
                        loss = F.cross_entropy(logits.float(), y)
                    else:
                        t_logits, t_feat = teacher(x, index)
                        loss = distill_loss(cfg, logits.float(), feat, projected, y, t_logits, t_feat)
                scaler.scale(loss / group_size).backward()  # the step's gradient is the mean over its micro-batches
            loss_sum += loss.detach().double() * len(y)
            seen += len(y)
            if last_in_group:
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
        total_loss, total_seen = env.sum([float(loss_sum), seen])
        seconds = time.perf_counter() - t0
        state["epoch"] = epoch + 1
        state["loss_history"].append(total_loss / max(total_seen, 1))
        state["epoch_seconds"].append(seconds)
        log(env, f"[{phase}] epoch {epoch + 1}/{epochs} loss {state['loss_history'][-1]:.4f} ({seconds:.2f} s, {int(total_seen)} samples)",
            {"phase": phase, "event": "epoch", "epoch": epoch + 1, "loss": state["loss_history"][-1], "seconds": seconds, "samples": int(total_seen)}, out)
        if env.main:
            payload = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(), "state": state}
            atomic_write(ckpt, lambda tmp: torch.save(payload, tmp))
        env.barrier()  # nobody runs ahead of a checkpoint that is still being written
    model.eval()
    return {**state, "resumed_from_epoch": resumed_from, "micro_batch_size": micro}


# ---- evaluation --------------------------------------------------------------------------------


def evaluate(env: Dist, model: nn.Module, test: Dataset, batch: int, bins: int) -> dict[str, float]:
    """Accuracy and ECE over the whole test set: each rank scores rows rank::world, the sums are all-reduced."""
    rows = list(range(env.rank, len(test), env.world))  # type: ignore[arg-type]
    correct, count = 0.0, 0.0
    table = torch.zeros(3, bins, dtype=torch.float64)  # per confidence bin: count, sum of confidence, correct
    model.eval()
    with torch.no_grad():
        for x, y in DataLoader(Subset(test, rows), batch_size=batch):
            logits, _ = split_outputs(model(x.to(env.device)))
            probs = F.softmax(logits.float(), dim=1).cpu()
            conf, pred = probs.max(1)
            hit = (pred == y).double()
            b = torch.clamp(torch.ceil(conf.double() * bins).long() - 1, 0, bins - 1)  # bin i holds (i/bins, (i+1)/bins]
            table[0].index_add_(0, b, torch.ones_like(hit))
            table[1].index_add_(0, b, conf.double())
            table[2].index_add_(0, b, hit)
            correct += float(hit.sum())
            count += len(y)
    totals = env.sum([correct, count, *table.flatten().tolist()])
    correct, count, table = totals[0], totals[1], torch.tensor(totals[2:]).view(3, bins)
    filled = table[0] > 0
    ece = float((table[0][filled] / count * (table[2][filled] / table[0][filled] - table[1][filled] / table[0][filled]).abs()).sum())
    return {"accuracy": correct / count, "ece": ece, "test_rows": int(count)}


# ---- the run -----------------------------------------------------------------------------------


def prepare(args: argparse.Namespace) -> dict[str, Any]:
    """Everything that can fail on a bad setting, before any process group exists (so no rank hangs)."""
    cfg = load_config(args.config)
    for flag, key in (("epochs", "train.epochs"), ("teacher_epochs", "teacher.epochs"), ("baseline", "train.baseline"),
                      ("accumulation_steps", "train.accumulation_steps")):
        if getattr(args, flag) is not None:
            cfg[key] = getattr(args, flag)
    world, accum, batch = int(os.environ.get("WORLD_SIZE", 1)), int(cfg["train.accumulation_steps"]), int(cfg["train.global_batch_size"])
    if batch % (world * accum):
        raise RecipeError("train.global_batch_size", f"{batch} is not divisible by {world} processes x {accum} accumulation steps")
    if int(cfg["train.epochs"]) < 1 or accum < 1:
        raise RecipeError("train.epochs" if int(cfg["train.epochs"]) < 1 else "train.accumulation_steps", "must be at least 1")
    return cfg


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rank = int(os.environ.get("RANK", 0))
    try:
        cfg = prepare(args)
        train, test = load_data(cfg)
        features, classes = data_shape(train, cfg)
        seed = int(cfg["train.seed"])
        torch.manual_seed(seed)
        teacher = build_model("teacher", cfg, features, classes)
        torch.manual_seed(seed)
        student = build_model("student", cfg, features, classes)
        world = int(os.environ.get("WORLD_SIZE", 1))
        if len(train) < world or len(test) == 0:  # type: ignore[arg-type]
            raise RecipeError("data.source", f"{len(train)} training rows for {world} processes and {len(test)} test rows; need at least one row per process and a test set")  # type: ignore[arg-type]
        for role, model in (("teacher", teacher), ("student", student)):
            probe_outputs(role, model, train, classes)
        t_params, s_params = params_of(teacher), params_of(student)
        if s_params > t_params:
            raise RecipeError("student.model", f"the student has {s_params:,} parameters, more than the teacher's {t_params:,}; distil into a smaller model")
        if cfg.get("teacher.weights"):
            load_weights(teacher, str(cfg["teacher.weights"]), "teacher.weights")
    except RecipeError as exc:
        if rank == 0:
            print(f"train.py: error: {exc}", file=sys.stderr)
        return 2
    env = Dist(args.cpu)
    out = (args.output_dir or HERE / "run").resolve()
    if env.main:
        out.mkdir(parents=True, exist_ok=True)
    env.barrier()
    resume = not args.no_resume
    log(env, f"world {env.world} ({env.backend}, {env.device.type}); teacher {t_params:,} params, student {s_params:,}; losses from {LOSSES_FROM}",
        {"event": "start", "world": env.world, "backend": env.backend, "teacher_params": t_params, "student_params": s_params}, out)
    batch = int(cfg["train.global_batch_size"])
    phases: dict[str, Any] = {}

    # teacher: given (weights or a trained factory), or trained here first with cross-entropy
    teacher_file = out / "teacher.safetensors"
    if not cfg.get("teacher.weights") and cfg["teacher.model"] in ("mlp", "cnn"):
        if teacher_file.is_file() and resume and not (out / "checkpoint-teacher.pt").is_file():
            load_weights(teacher, str(teacher_file), "teacher.weights")  # trained elsewhere and copied here
            phases["teacher"] = {"loaded_from": teacher_file.name}
        else:  # trains, continues an interrupted teacher, or (already finished) just reloads it from its checkpoint
            torch.manual_seed(seed)
            holder = Distiller(teacher, None)
            phases["teacher"] = fit("teacher", env, cfg, holder, train, int(cfg["teacher.epochs"]), None, out, resume)
            if env.main:
                state = {k: v.detach().cpu().contiguous() for k, v in teacher.state_dict().items()}
                from safetensors.torch import save_file

                atomic_write(teacher_file, lambda tmp: save_file(state, str(tmp)))
    teacher.to(env.device).eval()
    cached = cache_teacher_logits(env, teacher, train, out, batch) if cfg.get("distill.teacher_cache") else None
    signal = TeacherSignal(teacher, cached)

    # the distilled student (a FitNets regressor trains with it for the feature method)
    regressor = None
    if cfg["distill.method"] == "feature":
        with torch.no_grad():
            probe = train[0][0].unsqueeze(0)
            s_feat, t_feat = split_outputs(student(probe))[1], split_outputs(teacher.cpu()(probe))[1]
        teacher.to(env.device)
        if s_feat is None or t_feat is None:
            if env.main:
                print("train.py: error: distill.method: feature needs models that return (logits, features, ...)", file=sys.stderr)
            env.close()
            return 2
        regressor = nn.Linear(s_feat.shape[1], t_feat.shape[1])
    distiller = Distiller(student, regressor)
    phases["student"] = fit("student", env, cfg, distiller, train, int(cfg["train.epochs"]), signal, out, resume)

    baseline = None
    if cfg.get("train.baseline"):
        torch.manual_seed(seed)  # the same initial weights and batch order as the distilled student
        scratch = build_model("student", cfg, features, classes)
        phases["baseline"] = fit("baseline", env, cfg, Distiller(scratch, None), train, int(cfg["train.epochs"]), None, out, resume)
        baseline = evaluate(env, scratch, test, batch, int(cfg["eval.ece_bins"]))

    bins = int(cfg["eval.ece_bins"])
    metrics = {
        "world_size": env.world, "backend": env.backend, "device": env.device.type, "losses_from": LOSSES_FROM,
        "global_batch_size": batch, "accumulation_steps": int(cfg["train.accumulation_steps"]),
        "teacher": {"params": t_params, **evaluate(env, teacher, test, batch, bins)},
        "student": {"params": s_params, **evaluate(env, student, test, batch, bins)},
        "baseline": baseline,
        "compression_ratio": t_params / s_params,
        "phases": phases,
    }
    if baseline is not None:
        metrics["gain_points"] = (metrics["student"]["accuracy"] - baseline["accuracy"]) * 100
    if env.main:
        from safetensors.torch import save_file

        weights = {k: v.detach().cpu().contiguous() for k, v in student.state_dict().items()}
        atomic_write(out / "student.safetensors", lambda tmp: save_file(weights, str(tmp)))
        atomic_write(out / "metrics.json", lambda tmp: tmp.write_text(json.dumps(metrics, indent=1), encoding="utf-8"))
    log(env, f"done: student accuracy {metrics['student']['accuracy']:.4f} ECE {metrics['student']['ece']:.4f}; "
        f"teacher {metrics['teacher']['accuracy']:.4f}" + (f"; scratch {baseline['accuracy']:.4f}" if baseline else "") + f"; wrote {out}")
    env.barrier()
    env.close()
    return 0


if __name__ == "__main__":
    code = main()
    # Leave without interpreter finalisation: gloo's worker threads can still hold tensors then, and tearing them
    # down aborts the process (SIGABRT, "terminate called without an active exception"; pytorch PR #179291) after a
    # run that finished and wrote everything. Every file was written atomically and the process group destroyed.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
