"""The process group, rank-0 logging, atomic writes and the proof that ranks trained on disjoint shards."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler


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
        """Rank 0 writes every file; the others only train and evaluate their share."""
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum over ranks (float64 so counts stay exact)."""
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        if self.world > 1:
            dist.all_reduce(t)
        return [float(v) for v in t.tolist()]

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's object, on every rank (small objects only: it pickles them between our own processes)."""
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


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Write to a temporary name and rename: a crash never leaves half a checkpoint or weight file."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        # one mode for every file of the run, the process's ordinary one (some writers, safetensors among them,
        # create their file owner-only, which left the weights 0600 beside 0644 checkpoints and evidence)
        mask = os.umask(0o022)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def shard_record(env: Dist, sampler: DistributedSampler, epoch: int, n: int) -> dict[str, Any]:
    """Proof of disjoint shards: each rank's row count and hash, and the rows two ranks share (0 expected)."""
    rows = list(iter(sampler))
    digest = hashlib.sha256(np.array(sorted(rows), np.int64).tobytes()).hexdigest()[:16]
    everyone = env.gather(rows if n <= 2_000_000 else None)  # the full row lists only while they stay small
    overlap = None
    if all(r is not None for r in everyone):
        seen = np.concatenate([np.asarray(r, np.int64) for r in everyone])
        overlap = int(len(seen) - len(np.unique(seen)))
    return {
        "epoch": epoch,
        "rank_rows": env.gather(len(rows)),
        "rank_sha256": env.gather(digest),
        "overlap": overlap,
        "dataset_rows": n,
    }
