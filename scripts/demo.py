"""A realistic advisory session, as an agent would run it for "shrink my 800 MB BERT to fit a phone"."""

from __future__ import annotations

import json
import subprocess
import sys

STEPS = [
    ("route", ["--request", "Shrink my 800 MB BERT sentiment model to fit a phone (50 MB, 200 ms budget)"]),
    ("alpha", ["--deployment-environment", "mobile", "--application-domain", "general"]),
    ("recommend", ["--task-type", "classification", "--task-similarity", "0.95", "--teacher-params", "800", "--student-params", "50",
                   "--environment-stability", "static", "--task-distribution-known", "true"]),
    ("score", ["--alpha", "0.7", "--teacher-size", "800", "--teacher-accuracy", "0.95", "--student-size", "50", "--student-accuracy", "0.912"]),
    ("diagnose", ["--overall-accuracy", "0.912", "--per-class-accuracy", '{"positive": 0.95, "negative": 0.93, "mixed": 0.58}',
                  "--class-support", '{"positive": 4800, "negative": 4700, "mixed": 500}',
                  "--student-error-confidence", "0.93", "--teacher-error-confidence", "0.71", "--training-temperature", "1"]),
    ("gates", ["--alpha", "0.7", "--alpha-reason", "phone app: size first", "--distillation-score", "0.0557", "--compression-ratio", "16",
               "--temperature", "4", "--latency-ms", "180", "--latency-budget-ms", "200", "--memory-mb", "50", "--memory-budget-mb", "50",
               "--accuracy", "0.912", "--accuracy-target", "0.9"]),
]


def main() -> int:
    for command, args in STEPS:
        print(f"\n$ kd-skill {command} {' '.join(json.dumps(a) if ' ' in a else a for a in args)} --format text")
        proc = subprocess.run([sys.executable, "-m", "skill", command, *args, "--format", "text"], capture_output=True, text=True)
        print(proc.stdout or proc.stderr)
        if proc.returncode != 0:
            return proc.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
