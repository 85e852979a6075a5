"""A generated 1-D signal task where distillation has something to give, and the teacher the demo ships for it.

Six classes: a sine or a square wave at one of three frequencies, with random phase and amplitude, plus noise, 64
samples long. The demo's case is the one where distillation reliably helps at small scale: few labels (300),
many unlabelled rows (4,000) and a strong teacher trained elsewhere on far more labelled data (20,000 rows from the
same generator, another seed). Only the teacher's weights ship (a 1-D CNN of a few thousand parameters, with its
input scaling in the safetensors metadata); the data is generated again, byte for byte, from its seed.

    python scripts/signal_task.py teacher   # retrain scripts/demo_data/signal_teacher.safetensors (about a minute)
    python scripts/signal_task.py data DIR  # write DIR/signal.npz, the demo's data
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TEACHER = ROOT / "scripts" / "demo_data" / "signal_teacher.safetensors"
LENGTH, CLASSES = 64, 6
TEACHER_HIDDEN = [32, 32]
DEMO = {"labelled": 300, "unlabelled": 4000, "test": 1000, "seed": 7}
POOL = {"rows": 20000, "seed": 1234, "epochs": 12}  # the teacher's own labelled pool: never the demo's rows


def make(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n signals and their classes."""
    y = rng.integers(0, CLASSES, n)
    t = np.linspace(0, 1, LENGTH)[None, :]
    freq = np.array([2.0, 3.5, 5.0])[y % 3][:, None]
    wave = np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi, (n, 1)))
    wave = np.where((y // 3)[:, None] == 1, np.sign(wave), wave)
    x = rng.uniform(0.5, 1.5, (n, 1)) * wave + 0.8 * rng.normal(size=(n, LENGTH))
    return x.astype(np.float32), y.astype(np.int64)


def write_data(
    folder: Path,
    labelled: int = DEMO["labelled"],
    unlabelled: int = DEMO["unlabelled"],
    test: int = DEMO["test"],
    seed: int = DEMO["seed"],
) -> Path:
    """The demo's dataset as an .npz the runner reads (X_train, y_train, X_unlabeled, X_test, y_test)."""
    rng = np.random.default_rng(seed)
    X_train, y_train = make(labelled, rng)
    X_unl, _ = make(unlabelled, rng)
    X_test, y_test = make(test, rng)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "signal.npz"
    np.savez(path, X_train=X_train, y_train=y_train, X_unlabeled=X_unl, X_test=X_test, y_test=y_test)
    return path


def train_teacher(path: Path = TEACHER) -> float:
    """A 1-D CNN trained on the pool with Adam; saved with the metadata the runner reads (architecture and input
    scaling), so the runner feeds it raw signals. Returns its accuracy on the demo's test rows."""
    import torch
    from safetensors.torch import save_file

    sys.path.insert(0, str(ROOT))
    from skill.distill.nets import CNN1D
    from skill.distill.teacher import net_spec_metadata

    torch.manual_seed(0)
    X, y = make(POOL["rows"], np.random.default_rng(POOL["seed"]))
    mean, std = float(X.mean()), float(X.std())
    Xt, yt = torch.from_numpy((X - mean) / std), torch.from_numpy(y)
    net = CNN1D(LENGTH, TEACHER_HIDDEN, CLASSES)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(POOL["epochs"]):
        for idx in torch.randperm(len(Xt)).split(64):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(Xt[idx])[0], yt[idx]).backward()
            opt.step()
    rng = np.random.default_rng(DEMO["seed"])
    for n in (DEMO["labelled"], DEMO["unlabelled"]):
        make(n, rng)
    X_test, y_test = make(DEMO["test"], rng)
    with torch.no_grad():
        accuracy = float((net(torch.from_numpy((X_test - mean) / std))[0].argmax(1).numpy() == y_test).mean())
    scaler = {"mean": torch.full((LENGTH,), mean), "std": torch.full((LENGTH,), std)}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(
        {k: v.contiguous() for k, v in net.state_dict().items()},
        str(path),
        metadata=net_spec_metadata("cnn1d", TEACHER_HIDDEN, scaler),
    )
    return accuracy


if __name__ == "__main__":
    if sys.argv[1:2] == ["teacher"]:
        print(f"teacher test accuracy {train_teacher():.4f}, saved to {TEACHER.relative_to(ROOT)}")
    elif sys.argv[1:2] == ["data"] and len(sys.argv) == 3:
        print(write_data(Path(sys.argv[2])))
    else:
        print(__doc__)
        sys.exit(2)
