"""Benchmark (not a test): (a) the default digits run; (b) digits with 15% of labels, the rest as a transfer set,
a student 20x+ smaller, 5 paired seeds. Prints measured wall time per phase, accuracies, gain +- std, ECE."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from skill.distill import run_quick_distill  # noqa: E402
from skill.distill.config import DistillConfig  # noqa: E402


def row(name: str, r) -> str:  # type: ignore[no-untyped-def]
    w = r.wall_time_s
    gain = f"{r.seed_summary.mean_gain_points:+.2f} +- {r.seed_summary.std_gain_points:.2f}" if r.seed_summary else f"{r.gain_points:+.2f} (1 seed)"
    return (f"| {name} | {w.total:.1f} | {w.data:.1f} / {w.teacher:.1f} / {w.scratch:.1f} / {w.distill:.1f} | {r.teacher.accuracy:.4f} | "
            f"{r.scratch.accuracy:.4f} | {r.distilled.accuracy:.4f} | {gain} | {r.distilled.ece:.3f} | {r.compression_ratio:.0f}x |")


def main() -> None:
    print("| run | total s | data / teacher / scratch / distill s | teacher | scratch | distilled | gain pts | ECE | compression |")
    print("|---|---|---|---|---|---|---|---|---|")
    a = run_quick_distill(DistillConfig(threads=2, save_artifacts=False))
    print(row("(a) default digits", a), flush=True)
    # the teacher gets a wider net, a lower learning rate and smaller batches: on 170 labels it must beat the student
    b = run_quick_distill(DistillConfig(threads=2, labeled_fraction=0.15, seeds=5, epochs=120, teacher_epochs=300, teacher_hidden=[512],
                                        learning_rate=1e-3, batch_size=32, target_compression=25, temperature=4, kd_loss_weight=0.9,
                                        patience=40, time_budget_s=600, save_artifacts=False))
    print(row("(b) 15% labels + transfer set, 5 seeds", b))
    print(b.seed_summary.statement if b.seed_summary else "")


if __name__ == "__main__":
    main()
