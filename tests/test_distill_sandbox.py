"""Hostile inputs to kd_run_quick_distill (issue 11): each attack is refused or contained, the next call still works,
and no file outside the two roots changes. Attacks run through the real MCP SDK client and the real worker process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import anyio
import numpy as np
import pytest
from mcp import Client

from mcp_server.server import build_server
from skill.distill.jobs import Limits
from skill.errors import InputError
from tests import hostile_inputs as hostile
from tests.mcp_helpers import ROOT, staging_folders, text_of

NEXT = {"epochs": 2, "teacher_epochs": 2, "teacher_hidden": [16], "temperature": 4, "kd_loss_weight": 0.9, "save_artifacts": False}


@pytest.fixture
def roots(tmp_path: Path) -> Path:
    for sub in ("data", "out", "outside"):
        (tmp_path / sub).mkdir()
    return tmp_path


def _server(roots: Path, **limits):
    return build_server(Limits(data_root=roots / "data", output_root=roots / "out", **limits))


def _workers_touching(folder: Path) -> list[int]:
    """Live worker processes holding a descriptor under `folder` (ours, not another test's)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if b"skill.distill.worker" not in Path(f"/proc/{pid}/cmdline").read_bytes():
                continue
            if any(os.readlink(f"/proc/{pid}/fd/{fd}").startswith(str(folder)) for fd in os.listdir(f"/proc/{pid}/fd")):
                found.append(int(pid))
        except OSError:
            continue
    return found


def _attack_then_next(roots: Path, args: dict, progress=None, **limits):
    """The attack call, then an ordinary quick distill on the same server; returns both results and the attack's seconds."""

    async def go():
        async with Client(_server(roots, **limits)) as client:
            t0 = time.monotonic()
            attacked = await client.call_tool("kd_run_quick_distill", args, progress_callback=progress)
            seconds = time.monotonic() - t0
            return attacked, seconds, await client.call_tool("kd_run_quick_distill", NEXT)

    before = hostile.snapshot(roots / "outside")
    attacked, seconds, nxt = anyio.run(go)
    assert hostile.snapshot(roots / "outside") == before, "a file outside the roots changed"
    assert not nxt.is_error, text_of(nxt)
    return attacked, seconds, nxt


def test_torchscript_file_writer_is_refused_over_mcp(roots):
    victim, planted = roots / "outside" / "victim.txt", roots / "outside" / "planted.pth"
    victim.write_text("original content")
    hostile.torchscript("writer", roots / "data" / "teacher.pt", str(victim), str(planted))
    attacked, _, nxt = _attack_then_next(roots, {**NEXT, "teacher": "teacher.pt", "student_hidden": [8], "threads": 2})
    assert attacked.is_error and "teacher" in text_of(attacked) and "--allow-torchscript" in text_of(attacked)
    assert victim.read_text() == "original content" and not planted.exists()
    # threads are per run: the attack's threads=2 does not leak into the next run, which chooses its own
    assert nxt.structured_content["settings"]["threads_reason"] != "fixed by the caller"


def test_allowed_torchscript_still_cannot_write_outside_the_run_folder(roots, caplog):
    from skill.distill.write_lock import abi_version

    if abi_version() < 1:
        pytest.skip("this kernel has no Landlock; with --allow-torchscript a TorchScript teacher can write files")
    victim, planted = roots / "outside" / "victim.txt", roots / "outside" / "planted.pth"
    victim.write_text("original content")
    hostile.torchscript("writer", roots / "data" / "teacher.pt", str(victim), str(planted))
    attacked, _, _ = _attack_then_next(roots, {**NEXT, "teacher": "teacher.pt", "student_hidden": [8], "save_artifacts": True},
                                       allow_torchscript=True)
    assert attacked.is_error and "teacher" in text_of(attacked) and "Permission denied" in text_of(attacked), text_of(attacked)
    assert str(roots / "outside") not in text_of(attacked)  # the teacher's errors cannot probe the disk
    assert victim.read_text() == "original content" and not planted.exists()
    # ... but the operator's log names the path the worker was refused (a redacted '<path>' once hid a CI flake's cause)
    operator_log = "\n".join(r.getMessage() for r in caplog.records if r.name == "kd.distill" and r.levelname == "WARNING")
    assert str(roots / "outside") in operator_log, operator_log[-2000:]


def test_hanging_teacher_is_killed_at_budget_plus_grace_and_frees_the_slot(roots):
    hostile.torchscript("hang", roots / "data" / "hang.pt")
    args = {**NEXT, "teacher": "hang.pt", "student_hidden": [8], "time_budget_s": 2, "save_artifacts": True}
    attacked, seconds, nxt = _attack_then_next(roots, args, allow_torchscript=True, grace_s=2)
    assert attacked.is_error and "time budget" in text_of(attacked), text_of(attacked)
    assert seconds < 2 + 2 + 30  # budget + grace + worker start on a busy machine
    assert _workers_touching(roots) == []
    assert not any((roots / "out").rglob("*.png")), "a killed run left artifacts"


def test_teacher_runtime_error_is_one_clear_line(roots):
    hostile.torchscript("crash", roots / "data" / "crash.pt")
    attacked, _, _ = _attack_then_next(roots, {**NEXT, "teacher": "crash.pt", "student_hidden": [8]}, allow_torchscript=True)
    assert attacked.is_error and "teacher" in text_of(attacked) and "exploded on purpose" in text_of(attacked), text_of(attacked)
    assert "Traceback" not in text_of(attacked)


def test_client_going_away_kills_the_worker(roots):
    from tests.mcp_helpers import stdio_params

    seen = []

    async def on_progress(done, total, message):
        seen.append(message)

    async def go():
        params = stdio_params("--data-root", str(roots / "data"), "--output-root", str(roots / "out"), cwd=roots)
        async with Client(params) as client:
            with anyio.move_on_after(60):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(client.call_tool, "kd_run_quick_distill", {**NEXT, "epochs": 2000, "patience": 1000, "time_budget_s": 300, "save_artifacts": True},
                                  None, on_progress)
                    while not any("epoch" in (m or "") for m in seen):
                        await anyio.sleep(0.1)
                    assert len(_workers_touching(roots)) == 1
                    tg.cancel_scope.cancel()
        # the client closed the server's stdin and the server exited; its worker must not outlive it

    anyio.run(go)
    deadline = time.monotonic() + 10
    while _workers_touching(roots) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _workers_touching(roots) == []


def test_zip_bomb_member_is_never_decompressed(roots):
    from skill.distill.data import load_dataset

    bomb = hostile.zip_bomb_npz(roots / "data" / "bomb.npz", unused_mib=256)
    assert bomb.stat().st_size < 2 * 2**20
    tracemalloc.start()
    data = load_dataset(str(bomb), label_column=None, test_fraction=0.25, val_fraction=0.15, labeled_fraction=1.0, seed=0)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert data.X_train.shape[1] == 64 and peak < 16 * 2**20, peak  # the 256 MiB member was never inflated


def test_declared_huge_array_is_refused_from_its_header(roots):
    from skill.distill.data import load_dataset

    bomb = hostile.zip_bomb_npz(roots / "data" / "rows.npz", unused_mib=1, declared_rows=3_000_000)  # 768 MB of float32
    assert bomb.stat().st_size < 4 * 2**20
    tracemalloc.start()
    with pytest.raises(InputError, match="X_train.*3000000"):
        load_dataset(str(bomb), label_column=None, test_fraction=0.25, val_fraction=0.15, labeled_fraction=1.0, seed=0)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 16 * 2**20, peak  # refused from the header, before decompressing
    attacked, _, _ = _attack_then_next(roots, {**NEXT, "dataset": "rows.npz"})
    assert attacked.is_error and "X_train" in text_of(attacked) and "3000000" in text_of(attacked), text_of(attacked)


def test_label_flood_is_refused_as_soon_as_the_limit_is_passed(roots):
    """Counted work, not a clock: rows past the 1,001st distinct label are unreadable, so a loader that read on (or
    went quadratic over the whole file) would fail on them with a different error."""
    from skill.distill.data import load_dataset

    flood = hostile.label_flood_csv(roots / "data" / "flood.csv", 100_000)
    with flood.open("r+") as handle:
        lines = handle.readlines()
        handle.seek(0)
        handle.writelines(lines[:1100] + [line.replace(",", ",not-a-number,", 1) for line in lines[1100:]])
    with pytest.raises(InputError, match="more than 1000 distinct"):
        load_dataset(str(flood), label_column=None, test_fraction=0.25, val_fraction=0.15, labeled_fraction=1.0, seed=0)


def test_csv_streams_in_bounded_memory(roots):
    from skill.distill.data import load_dataset

    rng = np.random.default_rng(0)
    table = np.column_stack([rng.normal(size=(30_000, 10)).round(4), np.arange(30_000) % 3])
    path = roots / "data" / "big.csv"
    np.savetxt(path, table, delimiter=",", header=",".join([f"f{i}" for i in range(10)] + ["label"]), comments="", fmt="%g")
    tracemalloc.start()
    data = load_dataset(str(path), label_column=None, test_fraction=0.25, val_fraction=0.15, labeled_fraction=1.0, seed=0)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert data.num_classes == 3 and peak < 8 * path.stat().st_size, (peak, path.stat().st_size)


@pytest.mark.parametrize("kw, words", [
    ({"arch": "cnn", "teacher_hidden": [4096, 4096]}, "151,"),  # about 151 M parameters, counted from the real conv kernels
    ({"arch": "cnn", "teacher_hidden": [1024, 1024], "batch_size": 4096, "time_budget_s": 5}, "GFLOP"),
])
def test_nets_that_cannot_fit_are_refused_with_numbers(kw, words):
    from skill.distill import run_quick_distill
    from skill.distill.config import DistillConfig

    seen: list[str] = []
    with pytest.raises(InputError, match="teacher_hidden") as caught:
        run_quick_distill(DistillConfig(**kw, epochs=1, teacher_epochs=1, save_artifacts=False), progress=lambda d, t, m: seen.append(m))
    assert words in str(caught.value)
    assert not any("epoch" in message for message in seen), seen  # refused from arithmetic, before any training step


def test_symlink_swapped_in_after_the_call_cannot_redirect_reads_or_writes(roots):
    (roots / "data" / "sub").mkdir()
    hostile.small_npz(roots / "data" / "sub" / "d.npz", rows=60)
    hostile.small_npz(roots / "outside" / "d.npz", rows=90, seed=1)
    (roots / "out" / "runs").mkdir()
    swapped = []

    async def on_progress(done, total, message):
        if not swapped:  # the paths were checked; now swap both folders for links to the outside
            swapped.append(True)
            os.rename(roots / "data" / "sub", roots / "data" / "sub-moved")
            os.symlink(roots / "outside", roots / "data" / "sub")
            os.rename(roots / "out" / "runs", roots / "out" / "runs-moved")
            os.symlink(roots / "outside", roots / "out" / "runs")

    args = {**NEXT, "dataset": "sub/d.npz", "output_dir": "runs", "save_artifacts": True, "student_hidden": [8]}
    attacked, _, _ = _attack_then_next(roots, args, progress=on_progress)
    assert swapped and not attacked.is_error, text_of(attacked)
    report = attacked.structured_content
    assert report["n_train"] + report["n_val"] == 60  # the inside file was read, not the outside one (90 rows)
    written = sorted(p.name for p in (roots / "out" / "runs-moved").rglob("*") if p.is_file())
    assert written == ["plot.png", "report.json", "scaler.safetensors", "student.safetensors"]
    assert str(roots / "outside") not in text_of(attacked).replace(str(roots / "out"), "")


def test_memory_limit_stops_the_worker_not_the_server(roots):
    # 768 MB once decoded, against a 512 MiB allowance that an ordinary run (the next call) stays within
    hostile.zip_bomb_npz(roots / "data" / "wide.npz", unused_mib=0, declared_rows=192_000, width=1000)
    attacked, _, _ = _attack_then_next(roots, {**NEXT, "dataset": "wide.npz"}, memory_mb=512)
    assert attacked.is_error and "memory" in text_of(attacked) and "512" in text_of(attacked), text_of(attacked)


def test_safetensors_teacher_round_trip(roots):
    """A student written by one run is a safe teacher for the next: weights plus the architecture in its metadata."""

    async def go():
        async with Client(_server(roots)) as client:
            first = await client.call_tool("kd_run_quick_distill", {**NEXT, "teacher_hidden": [64], "save_artifacts": True, "student_hidden": [24]})
            weights = Path(first.structured_content["artifacts"]["student_weights"])
            os.link(weights, roots / "data" / "teacher.safetensors")
            return await client.call_tool("kd_run_quick_distill", {**NEXT, "teacher": "teacher.safetensors", "student_hidden": [8]})

    second = anyio.run(go)
    assert not second.is_error, text_of(second)
    assert second.structured_content["teacher"]["params"] == 64 * 24 + 24 + 24 * 10 + 10


@pytest.mark.parametrize("args, words", [
    ({"output_dir": "afile", "save_artifacts": True}, "output_dir"),
    ({"epochs": True}, "epochs: true/false is not a number"),
    ({"teacher_hidden": "[" * 3000 + "]" * 3000}, "teacher_hidden"),
    ({"dataset": "short.csv"}, "line 3 has 2 fields"),
])
def test_small_items_get_one_line_errors_naming_the_field(roots, args, words):
    (roots / "out" / "afile").write_text("x")
    (roots / "data" / "short.csv").write_text("a,b,label\n1,2,x\n3,4\n5,6,y\n")

    seen: list[str] = []

    async def progress(done, total, message):
        seen.append(message or "")

    async def go():
        async with Client(_server(roots)) as client:
            return await client.call_tool("kd_run_quick_distill", {**NEXT, **args}, progress_callback=progress)

    result = anyio.run(go)
    assert result.is_error and words in text_of(result), text_of(result)
    assert "\n" not in text_of(result).strip()
    if "output_dir" in args:  # refused before any training started: counted by its progress, not by a clock
        assert not any("epoch" in m for m in seen), seen


def test_odd_labels_are_just_text(roots):
    from skill.distill.data import load_dataset

    path = roots / "data" / "odd.csv"
    path.write_text("a,label\n" + "".join(f"{i},{'²' if i % 2 else '-3'}\n" for i in range(40)))
    data = load_dataset(str(path), label_column=None, test_fraction=0.25, val_fraction=0.15, labeled_fraction=1.0, seed=0)
    assert data.num_classes == 2


@pytest.mark.parametrize("args, field", [
    ({"teacher_size": 1e-300, "student_size": 1e300, "teacher_accuracy": 0.9}, "student_size"),  # refused as a unit mix-up
    ({"teacher_size": 1.0, "student_size": 0.5, "teacher_accuracy": 1e-320}, "teacher_accuracy"),  # overflows to inf
])
def test_score_never_returns_infinity(args, field):
    async def go():
        async with Client(build_server()) as client:
            return await client.call_tool("kd_score_distillation", {"alpha": 0.5, "student_accuracy": 0.5, **args})

    result = anyio.run(go)
    assert result.is_error and field in text_of(result) and "Infinity" not in text_of(result)


@pytest.mark.parametrize("argv, env, words", [
    (["--max-distills", "0"], {}, "--max-distills must be a whole number >= 1"),
    ([], {"KD_MAX_DISTILLS": "abc"}, "KD_MAX_DISTILLS must be a whole number >= 1"),
    ([], {"KD_MAX_DISTILLS": "-1"}, "KD_MAX_DISTILLS"),
    (["--max-distill-memory-mb", "100"], {}, "below 256"),
])
def test_bad_limits_stop_the_server_with_one_line(argv, env, words):
    proc = subprocess.run([sys.executable, "-m", "mcp_server", *argv], cwd=ROOT, capture_output=True, text=True, timeout=30,
                          env={**os.environ, **env}, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2 and words in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_ipv6_loopback_host_header_is_accepted():
    from starlette.testclient import TestClient

    from mcp_server.http import build_http_app

    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    with TestClient(build_http_app(build_server(), "::1", 8765, None), base_url="http://[::1]:8765") as client:
        assert client.post("/mcp", json=init, headers={**headers, "Host": "[::1]:8765"}).status_code == 200
        assert client.post("/mcp", json=init, headers={**headers, "Host": "evil.example:8765"}).status_code == 421


def test_cli_accepts_torchscript_with_a_warning(run_cli, tmp_path):
    hostile.torchscript("crash", tmp_path / "t.pt")
    code, _, stderr = run_cli("distill", "--teacher", str(tmp_path / "t.pt"), "--student-hidden", "[8]", "--epochs", "1", "--no-progress",
                              "--save-artifacts", "false")
    assert "warning: teacher t.pt is TorchScript" in stderr and stderr.count("warning:") == 1
    assert code == 2 and "exploded on purpose" in stderr and "Traceback" not in stderr, stderr


@pytest.mark.parametrize("y_train, words", [
    (np.array([{"a": 1}] * 20, dtype=object), "need pickle"),
    (np.array(["a"] * 20), "accepted: integers or floats"),
    (np.zeros((20, 2), dtype=np.int64), "at most 200000 rows of 1 values"),
])
def test_odd_npz_members_are_refused_with_the_member(roots, y_train, words):
    from skill.distill.data import load_dataset

    path = roots / "data" / "odd.npz"
    np.savez(path, X_train=np.ones((20, 3)), y_train=y_train, X_test=np.ones((4, 3)), y_test=np.arange(4) % 2)
    with pytest.raises(InputError, match="y_train") as caught:
        load_dataset(str(path), label_column=None, test_fraction=0.25, val_fraction=0.15, labeled_fraction=1.0, seed=0)
    assert words in str(caught.value)


@pytest.mark.parametrize("name, content, field, words", [
    ("bom.csv", b"\xef\xbb\xbff0,f1,label\n" + b"".join(b"%d,%d,%d\n" % (i, i % 3, i % 2) for i in range(40)), None, None),
    ("only_labels.csv", b"label\n" + b"".join(b"%d\n" % (i % 2) for i in range(40)), "X_train", "no feature columns"),
    ("one_row_per_class.csv", b"a,label\n" + b"".join(b"%d,c%d\n" % (i, i) for i in range(40)), "test_fraction", "rounds to no test rows"),
], ids=["bom", "labels_only", "one_row_per_class"])
def test_csv_edge_cases_load_or_name_the_field(tmp_path, name, content, field, words):
    """Outside review: a BOM stuck to the first column's name; a CSV of labels only trained on nothing; one row per
    class ended in 'X_test: is empty', a field the CSV's owner never gave."""
    from skill.distill.data import load_dataset

    (tmp_path / name).write_bytes(content)
    load = lambda: load_dataset(str(tmp_path / name), label_column="label", test_fraction=0.25, val_fraction=0.15, labeled_fraction=1.0, seed=0)
    if field is None:
        assert load().X_train.shape[1] == 2
        return
    with pytest.raises(InputError) as caught:
        load()
    assert caught.value.field == field and words in str(caught.value), str(caught.value)


def test_deeply_nested_safetensors_header_is_a_teacher_error(tmp_path):
    import struct

    from skill.distill.teacher import load_safetensors

    header = b"[" * 100_000 + b"]" * 100_000
    (tmp_path / "deep.safetensors").write_bytes(struct.pack("<Q", len(header)) + header)
    with pytest.raises(InputError) as caught:
        load_safetensors(tmp_path / "deep.safetensors", "mlp", [16], 8, 2, None)
    assert caught.value.field == "teacher"


def test_sigterm_to_the_server_kills_the_worker_and_leaves_no_staging_folder(roots):
    """Outside review: SIGTERM's default action killed the server mid-run and left `.<run>.partial` in the output root."""
    import signal

    from tests.mcp_helpers import stdio_params

    seen: list[str] = []

    async def on_progress(done, total, message):
        seen.append(message or "")

    def server_pids() -> list[int]:
        return [int(p) for p in filter(str.isdigit, os.listdir("/proc"))
                if b"mcp_server" in _cmdline(p) and str(roots / "data").encode() in _cmdline(p)]

    async def go():
        params = stdio_params("--data-root", str(roots / "data"), "--output-root", str(roots / "out"), cwd=roots)
        async with Client(params) as client:
            with anyio.move_on_after(60):
                async with anyio.create_task_group() as tg:
                    async def call() -> None:
                        with pytest.raises(Exception):  # the server is gone: the call cannot complete
                            await client.call_tool("kd_run_quick_distill", {**NEXT, "epochs": 2000, "patience": 1000, "time_budget_s": 300,
                                                                            "save_artifacts": True}, None, on_progress)
                    tg.start_soon(call)
                    while not any("epoch" in m for m in seen):
                        await anyio.sleep(0.1)
                    assert len(_workers_touching(roots)) == 1 and staging_folders(roots / "out")
                    os.kill(server_pids()[0], signal.SIGTERM)
                    deadline = time.monotonic() + 10
                    while (server_pids() or _workers_touching(roots)) and time.monotonic() < deadline:
                        await anyio.sleep(0.2)
                    tg.cancel_scope.cancel()

    anyio.run(go)
    assert server_pids() == [] and _workers_touching(roots) == []
    assert not staging_folders(roots / "out"), "a staging folder outlived the server"


def _cmdline(pid: str) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def test_a_first_run_on_a_fresh_machine_is_not_refused_by_the_write_lock(roots, monkeypatch):
    """Flake in CI (issue 19): torch's optimiser lazily imports torch._dynamo, whose import creates
    $TMPDIR/torchinductor_<user>; when that folder did not exist yet (a fresh machine) the write lock refused it and the
    run failed with PermissionError. A TMPDIR nobody has used before reproduces the fresh machine every time."""
    fresh_tmp = roots / "fresh-tmp"
    fresh_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(fresh_tmp))

    async def go():
        async with Client(_server(roots)) as client:
            return await client.call_tool("kd_run_quick_distill", NEXT)

    result = anyio.run(go)
    assert not result.is_error, text_of(result)
    assert result.structured_content["complete"]
