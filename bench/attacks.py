"""Benchmark (not a test): hostile kd_run_quick_distill calls against the stdio server, measured.

For each attack: wall time of the call, what came back, peak resident memory of the largest process in the
server's tree (server or distill worker, from getrusage of reaped children), whether a file outside the two
roots changed, and whether the next quick distill still succeeds. Each attack runs in its own process with a
hard timeout, so a server that hangs is reported as such.

    python bench/attacks.py                 # all attacks, a table
    python bench/attacks.py --only hang     # one
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
from mcp import Client, StdioServerParameters

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests import hostile_inputs as hostile  # noqa: E402

QUICK = {"epochs": 3, "teacher_epochs": 2, "teacher_hidden": [32], "temperature": 4, "kd_loss_weight": 0.9, "threads": 1,
         "time_budget_s": 30, "save_artifacts": False}
CALL_TIMEOUT_S = 60


def setup(name: str, work: Path) -> tuple[dict, list[str]]:
    """Files for the attack; returns the tool arguments and extra server flags."""
    data, outside = work / "data", work / "outside"
    if name == "torchscript_writer":
        (outside / "victim.txt").write_text("original content")
        hostile.torchscript("writer", data / "teacher.pt", str(outside / "victim.txt"), str(outside / "planted.pth"))
        return {**QUICK, "teacher": "teacher.pt"}, []
    if name == "torchscript_writer_allowed":
        (outside / "victim.txt").write_text("original content")
        hostile.torchscript("writer", data / "teacher.pt", str(outside / "victim.txt"), str(outside / "planted.pth"))
        return {**QUICK, "teacher": "teacher.pt"}, ["--allow-torchscript"]
    if name == "hanging_forward":
        hostile.torchscript("hang", data / "hang.pt")
        return {**QUICK, "teacher": "hang.pt", "student_hidden": [8], "time_budget_s": 3}, ["--allow-torchscript"]
    if name == "zip_bomb_unused_2gib":
        hostile.zip_bomb_npz(data / "bomb.npz", unused_mib=2048)
        return {**QUICK, "dataset": "bomb.npz", "time_budget_s": 5}, []
    if name == "zip_bomb_declared_rows":
        hostile.zip_bomb_npz(data / "rows.npz", unused_mib=1, declared_rows=3_000_000)
        return {**QUICK, "dataset": "rows.npz", "time_budget_s": 5}, []
    if name == "label_flood_100k":
        hostile.label_flood_csv(data / "flood.csv", 100_000)
        return {**QUICK, "dataset": "flood.csv", "time_budget_s": 5}, []
    if name == "cnn_1024_batch_4096":
        return {**QUICK, "arch": "cnn", "teacher_hidden": [1024, 1024], "batch_size": 4096, "time_budget_s": 5}, []
    if name == "cnn_4096x4096":
        return {**QUICK, "arch": "cnn", "teacher_hidden": [4096, 4096], "time_budget_s": 5}, []
    if name == "symlink_race":
        hostile.small_npz(outside / "d.npz", rows=90, seed=1)
        (data / "sub").mkdir()
        hostile.small_npz(data / "sub" / "d.npz", rows=60)
        (work / "out" / "runs").mkdir()
        return {**QUICK, "dataset": "sub/d.npz", "output_dir": "runs", "save_artifacts": True, "student_hidden": [8]}, []
    raise SystemExit(f"unknown attack {name}")


def swap(work: Path) -> None:
    """Replace the data folder and the output folder by symlinks to the outside folder."""
    os.rename(work / "data" / "sub", work / "data" / "sub-moved")
    os.symlink(work / "outside", work / "data" / "sub")
    os.rename(work / "out" / "runs", work / "out" / "runs-moved")
    os.symlink(work / "outside", work / "out" / "runs")


async def attack(name: str, work: Path, args: dict, flags: list[str]) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    params = StdioServerParameters(command=sys.executable, cwd=str(work),
                                   args=["-m", "mcp_server", "--data-root", str(work / "data"), "--output-root", str(work / "out"), *flags], env=env)
    swapped = []

    async def on_progress(done, total, message):
        if name == "symlink_race" and not swapped:
            swapped.append(True)
            swap(work)

    out: dict = {}
    async with Client(params) as client:
        t0 = time.monotonic()
        try:
            with anyio.fail_after(CALL_TIMEOUT_S):
                result = await client.call_tool("kd_run_quick_distill", args, progress_callback=on_progress)
            text = "\n".join(getattr(c, "text", "") for c in result.content)
            out["outcome"] = ("error: " + text[:160]) if result.is_error else "ran: " + (result.structured_content or {}).get("summary", "")[:120]
            if not result.is_error and name == "symlink_race":
                out["n_train_reported"] = result.structured_content["n_train"]
        except TimeoutError:
            out["outcome"] = f"no answer within {CALL_TIMEOUT_S} s"
        out["seconds"] = round(time.monotonic() - t0, 1)
        t1 = time.monotonic()
        try:
            with anyio.fail_after(CALL_TIMEOUT_S):
                nxt = await client.call_tool("kd_run_quick_distill", QUICK)
            out["next_call"] = "error: " + "\n".join(getattr(c, "text", "") for c in nxt.content)[:100] if nxt.is_error else "ok"
        except TimeoutError:
            out["next_call"] = f"no answer within {CALL_TIMEOUT_S} s"
        out["next_call_s"] = round(time.monotonic() - t1, 1)
    return out


def one(name: str, no_flags: bool = False) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for sub in ("data", "out", "outside"):
            (work / sub).mkdir()
        args, flags = setup(name, work)
        flags = [] if no_flags else flags
        before = hostile.snapshot(work / "outside")
        result = anyio.run(attack, name, work, args, flags)
        after = hostile.snapshot(work / "outside")
        result["outside_changed"] = before != after
        result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
        return {"attack": name, **result}


ATTACKS = ["torchscript_writer", "torchscript_writer_allowed", "hanging_forward", "zip_bomb_unused_2gib", "zip_bomb_declared_rows",
           "label_flood_100k", "cnn_1024_batch_4096", "cnn_4096x4096", "symlink_race"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", action="append")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("--no-flags", action="store_true", help="start the server without extra flags (for servers older than them)")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.no_flags)))
        return
    rows = []
    for name in args.only or ATTACKS:
        try:
            proc = subprocess.run([sys.executable, __file__, "--one", name, *(["--no-flags"] if args.no_flags else [])], capture_output=True, text=True, timeout=4 * CALL_TIMEOUT_S)
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 else {"attack": name, "outcome": "bench failed: " + proc.stderr[-300:]})
        except subprocess.TimeoutExpired:
            rows.append({"attack": name, "outcome": f"the whole attack hung past {4 * CALL_TIMEOUT_S} s"})
        print(json.dumps(rows[-1]), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
