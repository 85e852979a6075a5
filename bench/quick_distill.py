"""Benchmark (not a test) of the quick distill: speed and the closing-table results. Prints Markdown tables.

Sections (all by default, or name some: `python bench/quick_distill.py speed torchdistill results`):
- speed: the default digits run, median of N repeats, quiet and beside one CPU-bound process this script starts
  (a Python busy loop, stopped afterwards); the same with 1 and 2 torch threads. The 1-minute load average is
  printed next to every median: on a shared machine, rerun when it is low.
- torchdistill: seconds per distillation epoch of torchdistill 1.1.5 (../shared/bench/torchdistill_side_by_side,
  copied to a temporary folder because it writes there) against this runner's trainer on the same job, both at
  2 threads: one student alone, and per student in the runner's default stack.
- results: digits 3 seeds; digits with 15% of labels and the rest as a transfer set; breast cancer raw versus
  standardised; a generated semi-supervised 1-D signal task with a CNN1D student and its transfer set.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from skill.distill import run_quick_distill  # noqa: E402
from skill.distill.config import DistillConfig  # noqa: E402

REPEATS = int(os.environ.get("REPEATS", 5))
TD_SIDE = Path(os.environ.get("TD_SIDE", ROOT.parent / "shared" / "bench" / "torchdistill_side_by_side"))
if not TD_SIDE.is_dir():
    TD_SIDE = Path("/work/shared/bench/torchdistill_side_by_side")


def load() -> str:
    return f"{os.getloadavg()[0]:.2f}"


@contextmanager
def busy_neighbour() -> Iterator[None]:
    """One CPU-bound process beside the run (what a laptop with a build or a browser tab looks like)."""
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(1.0)
        yield
    finally:
        proc.terminate()
        proc.wait()


def timed_default(repeats: int, **kw: object) -> tuple[float, list[float], str, object]:
    times, report = [], None
    before = load()
    for _ in range(repeats):
        t0 = time.perf_counter()
        report = run_quick_distill(DistillConfig(save_artifacts=False, **kw))  # type: ignore[arg-type]
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times, f"{before} -> {load()}", report


def speed() -> None:
    run_quick_distill(DistillConfig(save_artifacts=False, epochs=3, teacher_epochs=2))  # imports and first-call costs, not timed
    print("\n### Default digits run (wall s, median of %d)\n" % REPEATS)
    print("| condition | threads | median s | all runs s | load avg (1 min) before -> after | phases (plan / teacher / students) |")
    print("|---|---|---|---|---|---|")
    rows = [("quiet", None, False), ("beside one busy process", None, True), ("quiet", 2, False), ("beside one busy process", 2, True)]
    for name, threads, busy in rows:
        with busy_neighbour() if busy else _nothing():
            median, times, loads, r = timed_default(REPEATS, threads=threads)
        w = r.wall_time_s  # type: ignore[attr-defined]
        print(f"| {name} | {r.settings.threads} ({'auto' if threads is None else 'fixed'}) | {median:.2f} | "  # type: ignore[attr-defined]
              f"{', '.join(f'{t:.2f}' for t in times)} | {loads} | {w.plan:.2f} / {w.teacher:.2f} / {w.students:.2f} |", flush=True)


@contextmanager
def _nothing() -> Iterator[None]:
    yield


# ---- torchdistill side by side --------------------------------------------------------------------------------------------
def _our_epoch_seconds(members_kind: str, epochs: int, threads: int = 2) -> float:
    """Our trainer on torchdistill's job: digits 70/30 (stratified, seed 0), features / 16, untrained teacher MLP
    64-256-256-10 in eval mode, student 64-45-10, batch 64, Adam 3e-3, KD T 4 weight 0.9, 2 threads."""
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from skill.distill import nets
    from skill.distill.targets import TeacherTargets
    from skill.distill.train import Clock, Member, TrainSpec, train

    torch.set_num_threads(threads)
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
    torch.manual_seed(0)
    teacher = nets.MLP(64, [256, 256], 10).eval()
    if members_kind == "one":
        members = [Member("distilled", 0, 3e-3, temperature=4.0, ce_weight=0.1, kd_weight=0.9)]
    else:  # the runner's default stack at 3 seeds: per seed 3 scratch learning rates and 3 temperatures
        members = [Member("scratch", s, 3e-3 * f) for s in range(3) for f in (0.5, 1, 2)]
        members += [Member("distilled", s, 3e-3, temperature=T, ce_weight=0.1, kd_weight=0.9) for s in range(3) for T in (2.0, 4.0, 8.0)]
    X_t, y_t = torch.from_numpy(Xtr), torch.from_numpy(ytr)
    best = []
    for _ in range(3):
        targets = TeacherTargets([teacher], [0] * len(members), X_t, cache=True)  # teacher outputs once: inputs are not augmented
        spec = TrainSpec(build=lambda: nets.MLP(64, [45], 10), members=members, X=X_t, y=y_t, has_label=torch.ones(len(y_t), dtype=torch.bool),
                         X_val=torch.from_numpy(Xte), y_val=torch.from_numpy(yte), epochs=epochs, batch_size=64, patience=epochs,
                         clock=Clock(time.monotonic() + 600), targets=targets)
        t0 = time.perf_counter()
        train(spec)
        best.append((time.perf_counter() - t0) / epochs / len(members))
    return min(best)  # best of 3, as torchdistill's script reports its best run


def torchdistill() -> None:
    print("\n### Per distillation epoch versus torchdistill 1.1.5 (same job, 2 threads)\n")
    try:
        import torchdistill as _  # noqa: F401
    except ImportError:
        print("torchdistill is not installed: `pip install --no-deps torchdistill==1.1.5` (see its README); skipped")
        return
    epochs = int(os.environ.get("E", 20))
    with tempfile.TemporaryDirectory() as tmp:
        side = Path(tmp) / "td"
        shutil.copytree(TD_SIDE, side)
        for path in side.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        before = load()
        out = subprocess.run([sys.executable, "td_epoch.py"], cwd=side, env={**os.environ, "E": str(epochs)}, capture_output=True, text=True, timeout=900)
        td_line = [line for line in out.stdout.splitlines() if "ms per epoch" in line]
        if not td_line:
            print("torchdistill run failed:", out.stderr[-500:])
            return
        td_ms = float(td_line[0].split()[1])
    one = _our_epoch_seconds("one", epochs) * 1000
    one_auto = _our_epoch_seconds("one", epochs, threads=1) * 1000
    stack = _our_epoch_seconds("stack", epochs) * 1000
    # the README's recipe for our side: the runner itself, T 4, weight 0.9, 2 threads; scratch trains beside the
    # distilled student in the same stack, so the stack's time is shared by two students
    runs = [run_quick_distill(DistillConfig(temperature=4, kd_loss_weight=0.9, epochs=epochs, patience=epochs, threads=2, save_artifacts=False))
            for _ in range(3)]
    runner = min(r.wall_time_s.students / r.settings.epochs_run_distilled / 2 for r in runs) * 1000
    print("| side | ms per student-epoch | ratio vs torchdistill | load avg |")
    print("|---|---|---|---|")
    print(f"| torchdistill 1.1.5 (best of 6 runs) | {td_ms:.1f} | 1.0x | {before} |")
    print(f"| ours, one student alone (best of 3) | {one:.1f} | {td_ms / one:.1f}x | {load()} |")
    print(f"| ours, one student alone at the runner's thread choice (1 thread, best of 3) | {one_auto:.1f} | {td_ms / one_auto:.1f}x | {load()} |")
    print(f"| ours, the runner as in the README (students stage / epochs / 2 students, best of 3) | {runner:.1f} | {td_ms / runner:.1f}x | {load()} |")
    print(f"| ours, per student in the default 3-seed stack of 18 (best of 3) | {stack:.1f} | {td_ms / stack:.1f}x | {load()} |", flush=True)


# ---- closing-table results ----------------------------------------------------------------------------------------------
def _row(name: str, r) -> str:  # type: ignore[no-untyped-def]
    c = r.comparison
    interval = f"{c.interval[0]:+.2f} to {c.interval[1]:+.2f}" if c else "-"
    seeds = f"{c.seed_interval[0]:+.2f} to {c.seed_interval[1]:+.2f}" if c and c.seed_interval else "-"
    tests = f"{c.test_interval[0]:+.2f} to {c.test_interval[1]:+.2f}" if c else "-"
    mean = f"{c.mean_gain_points:+.2f}" if c else "-"
    return (f"| {name} | {r.wall_time_s.total:.1f} ({r.settings.epochs} ep) | {r.teacher.accuracy:.4f} | {np.mean([p.scratch_accuracy for p in c.pairs]):.4f} | "
            f"{np.mean([p.distilled_accuracy for p in c.pairs]):.4f} | {mean} | {interval} | {seeds} | {tests} | {c.verdict if c else '-'} | "
            f"{r.compression_ratio or 0:.0f}x | {load()} |")


def _signal_task(folder: Path, seed: int = 0) -> str:
    """A generated semi-supervised 1-D signal task: 6 classes (sine or square wave x three frequencies) with random
    phase and amplitude plus noise, 64 samples; 200 labelled, 8,000 unlabelled, 2,000 test rows."""
    rng = np.random.default_rng(seed)

    def make(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 6, n)
        t = np.linspace(0, 1, 64)[None, :]
        freq = np.array([2.0, 3.5, 5.0])[y % 3][:, None]
        wave = np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi, (n, 1)))
        wave = np.where((y // 3)[:, None] == 1, np.sign(wave), wave)
        x = rng.uniform(0.5, 1.5, (n, 1)) * wave + 0.5 * rng.normal(size=(n, 64))
        return x.astype(np.float32), y.astype(np.int64)

    X_train, y_train = make(200)
    X_unl, _ = make(8000)
    X_test, y_test = make(2000)
    path = folder / "signal.npz"
    np.savez(path, X_train=X_train, y_train=y_train, X_unlabeled=X_unl, X_test=X_test, y_test=y_test)
    return str(path)


def _breast_cancer(folder: Path) -> str:
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True)
    path = folder / "breast_cancer.csv"
    header = ",".join(f"f{i}" for i in range(X.shape[1])) + ",label"
    np.savetxt(path, np.column_stack([X, y]), delimiter=",", header=header, comments="", fmt=["%.6g"] * X.shape[1] + ["%d"])
    return str(path)


def results() -> None:
    print("\n### Closing table: distilled versus scratch, 95% intervals in points (seeds and test rows combined)\n")
    print("| run | wall s (student epochs planned) | teacher | scratch (mean) | distilled (mean) | gain | interval | seeds only | test rows only | verdict | compression | load avg |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        r = run_quick_distill(DistillConfig(seeds=3, save_artifacts=False))
        print(_row("digits, default settings, 3 seeds", r), flush=True)
        # the teacher gets a wider net, a lower learning rate and smaller batches: on 170 labels it must beat the student
        r = run_quick_distill(DistillConfig(labeled_fraction=0.15, seeds=5, epochs=120, teacher_epochs=300, teacher_hidden=[512], learning_rate=1e-3,
                                            batch_size=32, target_compression=25, temperature=4, kd_loss_weight=0.9, patience=40, time_budget_s=600,
                                            save_artifacts=False))
        print(_row("digits, 15% labels + transfer set, 5 seeds", r), flush=True)
        cancer = _breast_cancer(folder)
        for kind in ("none", "auto"):
            r = run_quick_distill(DistillConfig(dataset=cancer, seeds=5, standardize=kind, time_budget_s=300, save_artifacts=False))
            print(_row(f"breast cancer, {'raw features' if kind == 'none' else 'standardised'}, 5 seeds", r), flush=True)
        signal = _signal_task(folder)
        r = run_quick_distill(DistillConfig(dataset=signal, input_layout="sequence", seeds=5, teacher_hidden=[64, 64], teacher_epochs=600, epochs=60,
                                            student_hidden=[4, 4], temperature=4, kd_loss_weight=0.9, patience=30, time_budget_s=600,
                                            save_artifacts=False))
        print(_row("1-D signal, 200 labels + 8,000 unlabelled, CNN1D [4, 4], 5 seeds", r), flush=True)
        print(f"\nsignal task: {r.summary}")


SECTIONS = {"speed": speed, "torchdistill": torchdistill, "results": results}

if __name__ == "__main__":
    print(f"machine: {os.cpu_count()} cores, load average {load()}")
    for name in sys.argv[1:] or list(SECTIONS):
        SECTIONS[name]()
