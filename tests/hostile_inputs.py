"""Hostile files for the sandbox tests and bench/attacks.py: each is what an attacker would hand the quick distill."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np

# TorchScript is scripted in a child interpreter: torch.jit.script needs the class source in a real file.
_SCRIPTS = '''
import sys, torch

class Writer(torch.nn.Module):
    """Overwrites the first bytes of `victim` and plants `planted` (a .pth would run at the next Python start)."""
    def __init__(self, victim: str, planted: str):
        super().__init__()
        self.victim = victim
        self.planted = planted

    def forward(self, x):
        t = torch.from_file(self.victim, shared=True, size=8, dtype=torch.uint8)
        t.fill_(88)
        p = torch.from_file(self.planted, shared=True, size=16, dtype=torch.uint8)
        p.fill_(35)
        return torch.zeros(x.shape[0], 10) + (t.sum() + p.sum()).float() * 0.0

class Hang(torch.nn.Module):
    """A forward that never returns."""
    def forward(self, x):
        s = x.sum()
        while bool(s > -1.0):
            s = s + 1.0
        return torch.zeros(x.shape[0], 10)

class Crash(torch.nn.Module):
    """A forward that raises at run time."""
    def forward(self, x):
        if bool(x.sum() > -1.0):
            raise RuntimeError("teacher exploded on purpose")
        return torch.zeros(x.shape[0], 10)

kind, out = sys.argv[1], sys.argv[2]
module = {"writer": lambda: Writer(sys.argv[3], sys.argv[4]), "hang": Hang, "crash": Crash}[kind]()
torch.jit.script(module).save(out)
'''


def torchscript(kind: str, out: Path, *args: str) -> Path:
    """Script `kind` (writer VICTIM PLANTED, hang, crash) into `out`."""
    script = out.parent / "_make_script.py"
    script.write_text(_SCRIPTS)
    subprocess.run([sys.executable, str(script), kind, str(out), *args], check=True, capture_output=True)
    script.unlink()
    return out


def small_npz(path: Path, rows: int = 60, features: int = 64, classes: int = 3, seed: int = 0) -> Path:
    """A legitimate little dataset (the default features match digits' 8x8 images)."""
    rng = np.random.default_rng(seed)
    y = np.arange(rows) % classes
    X = rng.normal(size=(rows, features)).astype(np.float32) + y[:, None]
    yt = np.arange(rows // 2) % classes
    Xt = rng.normal(size=(rows // 2, features)).astype(np.float32) + yt[:, None]
    np.savez(path, X_train=X, y_train=y, X_test=Xt, y_test=yt)
    return path


def _npy_header(shape: tuple[int, ...], dtype: str) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def zip_bomb_npz(path: Path, unused_mib: int, declared_rows: int = 0, width: int = 64) -> Path:
    """A valid small dataset plus a member of `unused_mib` MiB of zeros that deflates to almost nothing.

    With `declared_rows`, X_train itself is replaced by a member whose header declares that many rows of `width`
    float32 (zeros, deflated): the size is only visible from the headers.
    """
    small_npz(path)
    chunk = b"\0" * (1 << 20)
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as archive:  # 0 MiB: a harmless empty member
        with archive.open("padding.npy", "w", force_zip64=True) as member:
            member.write(_npy_header((unused_mib << 20,), "|u1"))
            for _ in range(unused_mib):
                member.write(chunk)
    if declared_rows:
        with zipfile.ZipFile(path) as source:
            kept = {n: source.read(n) for n in source.namelist() if n != "X_train.npy"}
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, data in kept.items():
                archive.writestr(name, data)
            with archive.open("X_train.npy", "w", force_zip64=True) as member:
                member.write(_npy_header((declared_rows, width), "<f4"))
                remaining = declared_rows * width * 4
                while remaining > 0:
                    member.write(chunk[: min(len(chunk), remaining)])
                    remaining -= len(chunk)
    return path


def label_bomb_npz(path: Path, declared_labels: int) -> Path:
    """A small dataset whose y_train declares `declared_labels` int64 zeros: a few hundred KiB that inflate to gigabytes."""
    small_npz(path)
    with zipfile.ZipFile(path) as source:
        kept = {n: source.read(n) for n in source.namelist() if n != "y_train.npy"}
    chunk = b"\0" * (1 << 22)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, data in kept.items():
            archive.writestr(name, data)
        with archive.open("y_train.npy", "w", force_zip64=True) as member:
            member.write(_npy_header((declared_labels,), "<i8"))
            for start in range(0, declared_labels * 8, len(chunk)):
                member.write(chunk[: min(len(chunk), declared_labels * 8 - start)])
    return path


def many_members_npz(path: Path, members: int) -> Path:
    """A valid dataset plus `members` empty entries: zipfile would parse every one of them."""
    small_npz(path)
    with zipfile.ZipFile(path, "a") as archive:
        for i in range(members):
            archive.writestr(f"junk{i}.npy", b"")
    return path


def label_flood_csv(path: Path, rows: int) -> Path:
    """Every row a new label: 100k distinct labels made the old loader quadratic (list.index)."""
    with path.open("w") as handle:
        handle.write("a,b,label\n")
        for i in range(rows):
            handle.write(f"{i % 7},{i % 5},L{i}\n")
    return path


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (symlinks not followed) with its content: equal snapshots mean nothing changed."""
    out = {}
    for base, dirs, files in os.walk(folder):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(base, d))]:
            p = Path(base) / name
            out[str(p)] = p.read_bytes() if p.is_file() and not p.is_symlink() else b"<link>"
    return out
