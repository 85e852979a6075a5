"""The exported torchrun recipe trains for real on the CPU (gloo): two processes on disjoint shards match one
process with the same global batch, a resumed run continues where it stopped, gradient accumulation and the
vendored losses give the same path, a user's model and Dataset factory train, and bad settings stop train.py
with one line.

Tolerance: the digits training split is cut to 1344 rows (21 global batches of 64), so one and two processes
see exactly the same global batches; they then differ only by float summation order: losses agree to a relative
1e-4, test accuracy to one test row, ECE to 1e-3. (With a split that does not divide, two processes drop the
one odd row and the last partial batch differs: after 2 epochs the student's accuracy then differed by up to
~10 points on digits, because a 2-epoch student is still on the steep part of its curve.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from skill.export import export_recipe
from skill.export.request import ExportRequest

pytestmark = pytest.mark.slow
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]
EPOCHS = ["--epochs", "2"]
USER_MODULE = '''
import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

DATA = {data!r}


class Split(Dataset):
    def __init__(self, split):
        with np.load(DATA) as arrays:
            self.X, self.y = torch.from_numpy(arrays["X_" + split]), torch.from_numpy(arrays["y_" + split]).long()

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.X[i], self.y[i]


def digits(split):
    return Split(split)


def student():
    return nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))


def huge_student():
    return nn.Sequential(nn.Linear(64, 4096), nn.ReLU(), nn.Linear(4096, 10))


def three_class_student():
    return nn.Linear(64, 3)
'''


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    full = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(cmd, cwd=cwd, env=full, capture_output=True, text=True, timeout=timeout)


def _metrics(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())


def _events(folder: Path, event: str, phase: str | None = None) -> list[dict]:
    lines = [json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines()]
    return [r for r in lines if r.get("event") == event and (phase is None or r.get("phase") == phase)]


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> Path:
    from sklearn.datasets import load_digits

    root = tmp_path_factory.mktemp("torchrun")
    X, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))
    train, test = order[:1344], order[1344:]
    data = root / "digits.npz"
    np.savez(data, X_train=(X[train] / 16).astype(np.float32), y_train=y[train], X_test=(X[test] / 16).astype(np.float32), y_test=y[test])
    export_recipe(ExportRequest(data=str(data), output_dir=str(root / "recipe"), teacher_epochs=2, epochs=2, student_hidden=[24]))
    return root / "recipe"


@pytest.fixture(scope="module")
def two_processes(recipe) -> Path:
    proc = _run([*TORCHRUN, "--standalone", "--nproc_per_node", "2", str(recipe / "train.py"), *EPOCHS, "--cpu", "--output-dir", "two"], recipe)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return recipe / "two"


def test_two_processes_train_disjoint_shards_and_the_loss_falls(two_processes):
    assert (two_processes / "student.safetensors").stat().st_size > 0
    m = _metrics(two_processes)
    assert m["world_size"] == 2 and m["backend"] == "gloo"
    for phase in ("teacher", "student"):
        shards = _events(two_processes, "shards", phase)[0]
        assert shards["rank_rows"] == [672, 672] and shards["overlap"] == 0 and len(set(shards["rank_sha256"])) == 2
        losses = m["phases"][phase]["loss_history"]
        assert len(losses) == 2 and losses[1] < losses[0]
    assert m["student"]["test_rows"] == 453 and 0 <= m["student"]["ece"] <= 1
    assert m["teacher"]["accuracy"] > 0.8  # two epochs are enough for the 256x256 teacher on digits


def test_one_process_resumed_with_accumulation_matches_two_processes(recipe, two_processes):
    """One process stops after epoch 1; started again for 2 it resumes (no epoch redone), this time with
    micro-batches of 32 accumulated in pairs and the package hidden (so kd_vendor/ supplies the losses and
    nets), and lands where two processes did: the same global batch gives the same optimisation path."""
    first = _run([sys.executable, str(recipe / "train.py"), "--epochs", "1", "--output-dir", "one"], recipe)
    assert first.returncode == 0, first.stderr[-3000:]
    hide = "import runpy, sys; sys.modules['skill'] = None; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
    second = _run([sys.executable, "-c", hide, str(recipe / "train.py"), *EPOCHS, "--accumulation-steps", "2", "--output-dir", "one"], recipe)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "[student] resumed from checkpoint-student.pt at epoch 1" in second.stdout
    one = recipe / "one"
    assert [e["epoch"] for e in _events(one, "epoch", "student")] == [1, 2]  # epoch 1 ran once, in the first run
    assert [e["epoch"] for e in _events(one, "epoch", "teacher")] == [1, 2]  # the teacher was not retrained
    a, b = _metrics(one), _metrics(two_processes)
    assert a["world_size"] == 1 and a["phases"]["student"]["resumed_from_epoch"] == 1
    assert a["losses_from"] == b["losses_from"] == "kd_vendor/losses.py"  # always the folder's own copy
    assert a["accumulation_steps"] == 2 and a["phases"]["student"]["micro_batch_size"] == 32
    for phase in ("teacher", "student"):
        assert a["phases"][phase]["loss_history"] == pytest.approx(b["phases"][phase]["loss_history"], rel=1e-4)
    for model in ("teacher", "student"):
        assert abs(a[model]["accuracy"] - b[model]["accuracy"]) <= 1 / 453 + 1e-9
        assert a[model]["ece"] == pytest.approx(b[model]["ece"], abs=1e-3)


def test_a_user_model_and_dataset_factory_train(recipe, two_processes, tmp_path):
    """The student and the data come from the user's module (by import path), the teacher from given weights,
    its logits cached to disk in a first pass; then bad models stop train.py with one line."""
    (tmp_path / "user_kd_models.py").write_text(USER_MODULE.format(data=str(recipe.parent / "digits.npz")))
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    folder = tmp_path / "recipe"
    sys.path.insert(0, str(tmp_path))  # the export checks the import paths on this Python path (by parsing only)
    try:
        export_recipe(ExportRequest(data="user_kd_models:digits", student="user_kd_models:student",
                                    teacher_weights=str(two_processes / "teacher.safetensors"), teacher_hidden=[256, 256],
                                    epochs=2, output_dir=str(folder), baseline=True, teacher_cache=True))
    finally:
        sys.path.remove(str(tmp_path))
    proc = _run([sys.executable, str(folder / "train.py")], folder, env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = _metrics(folder / "run")
    assert m["student"]["params"] == 64 * 16 + 16 + 16 * 10 + 10
    assert m["teacher"]["accuracy"] == pytest.approx(_metrics(two_processes)["teacher"]["accuracy"])  # the given weights, loaded
    losses = m["phases"]["student"]["loss_history"]
    assert losses[1] < losses[0] and m["baseline"]["accuracy"] > 0 and "gain_points" in m
    cache = list((folder / "run" / "teacher_logits").glob("*/rank0of1.npz"))  # the teacher ran once, in a first pass
    with np.load(cache[0]) as part:
        assert len(cache) == 1 and part["logits"].shape == (1344, 10) and part["logits"].dtype == np.float16

    # a student larger than the teacher, one with the wrong number of outputs, and an import that fails on the
    # training machine: one line each, exit 2, before any process group or training starts
    for student, words in (("user_kd_models:huge_student", "more than the teacher's"), ("user_kd_models:three_class_student", "expected (batch, 10) logits"),
                           ("user_kd_models:nothing_here", "has no attribute")):
        config = (folder / "config.yaml").read_text().replace("value: user_kd_models:student", f"value: {student}")
        (folder / "config.yaml").write_text(config)
        bad = _run([sys.executable, str(folder / "train.py"), "--output-dir", str(tmp_path / "bad")], folder, env)
        assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr[-2000:]
        assert bad.stderr.startswith("train.py: error: student.model:") and words in bad.stderr
        folder.joinpath("config.yaml").write_text(config.replace(f"value: {student}", "value: user_kd_models:student"))
    sized = _run([sys.executable, str(folder / "train.py"), "--student-sizes", "8", "--output-dir", str(tmp_path / "bad")], folder, env)
    assert sized.returncode == 2 and sized.stderr.startswith("train.py: error: --student-sizes: sizes runner-net students")
    assert len(sized.stderr.strip().splitlines()) == 1
    missing = _run([sys.executable, str(folder / "train.py")], folder, {"PYTHONPATH": ""})
    assert missing.returncode == 2 and "data.source: cannot import 'user_kd_models'" in missing.stderr


def test_the_folder_trains_the_same_whatever_package_is_installed(recipe, tmp_path):
    """The exported folder always takes its losses and nets from its own kd_vendor/: run once with the package
    hidden and once with an 'upgraded' package first on the path whose kd_loss differs, the losses agree exactly."""
    from skill.distill import losses, nets

    upgraded = tmp_path / "upgraded" / "skill" / "distill"
    upgraded.mkdir(parents=True)
    (upgraded.parent / "__init__.py").write_text("")
    (upgraded / "__init__.py").write_text("")
    (upgraded / "nets.py").write_text(Path(nets.__file__).read_text())
    (upgraded / "losses.py").write_text(Path(losses.__file__).read_text() + "\n\ndef kd_loss(s, t, T):\n    return 0.0 * s.sum()\n")
    hide = "import runpy, sys; sys.modules['skill'] = None; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
    short = ["--epochs", "1", "--teacher-epochs", "1", "--no-resume"]
    hidden = _run([sys.executable, "-c", hide, str(recipe / "train.py"), *short, "--output-dir", str(tmp_path / "hidden")], recipe)
    assert hidden.returncode == 0, hidden.stderr[-3000:]
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path / "upgraded"), os.environ.get("PYTHONPATH", "")])}
    check = _run([sys.executable, "-c", "import skill.distill.losses as l; print(l.__file__)"], recipe, env)
    assert str(tmp_path / "upgraded") in check.stdout  # the upgraded package is the one `import skill` finds
    installed = _run([sys.executable, str(recipe / "train.py"), *short, "--output-dir", str(tmp_path / "installed")], recipe, env)
    assert installed.returncode == 0, installed.stderr[-3000:]
    current = _run([sys.executable, str(recipe / "train.py"), *short, "--output-dir", str(tmp_path / "current")], recipe)
    assert current.returncode == 0, current.stderr[-3000:]  # this package importable, as it is
    a, b, c = _metrics(tmp_path / "hidden"), _metrics(tmp_path / "installed"), _metrics(tmp_path / "current")
    assert a["losses_from"] == b["losses_from"] == c["losses_from"] == "kd_vendor/losses.py"
    assert a["phases"]["student"]["loss_history"] == b["phases"]["student"]["loss_history"] == c["phases"]["student"]["loss_history"]
    assert a["student"]["accuracy"] == b["student"]["accuracy"] == c["student"]["accuracy"]
    assert a["student"]["ece"] == b["student"]["ece"] == c["student"]["ece"]
