"""kd_run_quick_distill through real clients: progress, report vs file, cancellation, busy limit, path attacks."""

from __future__ import annotations

import json
import os
import pickle
import time
from pathlib import Path

import anyio
import numpy as np
import pytest
from mcp import Client

from mcp_server.server import build_server
from skill.distill.jobs import Limits
from tests.mcp_helpers import stdio_params, text_of

QUICK = {"epochs": 8, "teacher_epochs": 5, "teacher_hidden": [64], "temperature": 4, "kd_loss_weight": 0.9, "threads": 1}
LONG = {"epochs": 2000, "teacher_epochs": 3, "teacher_hidden": [64], "temperature": 4, "patience": 1000, "time_budget_s": 120, "threads": 1}


def _server(tmp_path: Path, max_concurrent: int = 1):
    return build_server(Limits(data_root=tmp_path / "data", output_root=tmp_path / "out", max_concurrent=max_concurrent))


@pytest.fixture
def roots(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    (tmp_path / "out").mkdir()
    return tmp_path


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def test_full_run_over_stdio_progress_and_report_matches_file(roots):
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(done, total, message):
        progress.append((done, total, message))

    async def go():
        params = stdio_params("--data-root", str(roots / "data"), "--output-root", str(roots / "out"), cwd=roots)
        async with Client(params) as client:
            result = await client.call_tool("kd_run_quick_distill", QUICK, progress_callback=on_progress)
            after = await client.call_tool("kd_choose_alpha", {"deployment_environment": "edge"})
            return result, after

    result, after = anyio.run(go)
    assert not result.is_error, text_of(result)
    assert len(progress) >= 3 and progress[0][2].startswith("starting")
    assert any("teacher" in (m or "") for _, _, m in progress) and any("scratch" in (m or "") for _, _, m in progress)
    report = result.structured_content
    on_disk = json.loads(Path(report["artifacts"]["report"]).read_text())
    for key in ("teacher", "scratch", "distilled"):
        assert on_disk[key]["accuracy"] == report[key]["accuracy"] and on_disk[key]["ece"] == report[key]["ece"]
    assert on_disk["gain_points"] == report["gain_points"]
    assert Path(report["artifacts"]["output_dir"]).resolve().is_relative_to((roots / "out").resolve())
    image = [c for c in result.content if c.type == "image"]
    assert image and image[0].mime_type == "image/png"
    assert not after.is_error


def test_cancel_stops_training_and_the_server_keeps_serving(roots):
    epochs_seen: list[float] = []

    async def on_progress(done, total, message):
        if message and "epoch" in message:
            epochs_seen.append(time.monotonic())

    async def go():
        async with Client(_server(roots)) as client:
            finished = None
            async with anyio.create_task_group() as tg:
                async def run():
                    nonlocal finished
                    finished = await client.call_tool("kd_run_quick_distill", LONG, progress_callback=on_progress)

                tg.start_soon(run)
                while not epochs_seen:  # training has started
                    await anyio.sleep(0.05)
                await anyio.sleep(1.0)  # cancel after about a second of training
                tg.cancel_scope.cancel()
            assert finished is None, "the long run ended by itself; the test did not cancel anything"
            cancelled_at = time.monotonic()
            t1 = time.monotonic()
            advice = await client.call_tool("kd_recommend_method", {"task_type": "classification"})
            advice_s = time.monotonic() - t1
            await anyio.sleep(1.0)  # training stops within about a second
            files_after_cancel = _files(roots / "out")
            again = await client.call_tool("kd_run_quick_distill", QUICK)
            epochs_after = [t for t in epochs_seen if t > cancelled_at]
            return advice, advice_s, files_after_cancel, again, epochs_after

    advice, advice_s, files_after_cancel, again, epochs_after = anyio.run(go)
    assert not advice.is_error, text_of(advice)
    assert epochs_after == [], epochs_after  # no training progress reached the client after the cancel
    assert files_after_cancel == []  # no partial artifact
    assert not again.is_error, text_of(again)  # the slot was freed: the worker really stopped
    assert again.structured_content["complete"]


def test_second_distillation_is_refused_while_busy_and_advice_still_answers(roots):
    async def go():
        async with Client(_server(roots, max_concurrent=1)) as client:
            results = {}
            async with anyio.create_task_group() as tg:
                async def long_run():
                    with anyio.move_on_after(6):
                        results["long"] = await client.call_tool("kd_run_quick_distill", LONG)
                    assert "long" not in results, "the long run ended early: " + text_of(results["long"])

                tg.start_soon(long_run)
                await anyio.sleep(0.8)
                results["busy"] = await client.call_tool("kd_run_quick_distill", QUICK)
                t0 = time.monotonic()
                results["advice"] = await client.call_tool("kd_score_distillation", {"alpha": 0.5, "teacher_size": 10, "teacher_accuracy": 0.9,
                                                                                     "student_size": 1, "student_accuracy": 0.8})
                results["advice_s"] = time.monotonic() - t0
                results["long_still_running"] = "long" not in results  # answered while the long run was in flight
                tg.cancel_scope.cancel()
            return results

    results = anyio.run(go)
    assert results["busy"].is_error and "Busy" in text_of(results["busy"])
    assert not results["advice"].is_error and results["long_still_running"], results  # ordering, not a clock


def _outside_snapshot(tmp_path: Path) -> list[str]:
    return sorted(str(p) for p in tmp_path.rglob("*") if "out" not in p.parts and "data" not in p.parts)


def test_path_attacks_are_refused(roots, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside")
    rng = np.random.default_rng(0)
    np.savez(outside / "secret.npz", X_train=rng.random((20, 3)), y_train=np.arange(20) % 2, X_test=rng.random((6, 3)), y_test=np.arange(6) % 2)
    os.symlink(outside / "secret.npz", roots / "data" / "link.npz")
    marker = outside / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (roots / "data" / "teacher.pt").write_bytes(pickle.dumps(Payload()))
    attacks = [
        ({"dataset": "../outside/secret.npz"}, "dataset", "'..'"),
        ({"dataset": str(outside / "secret.npz")}, "dataset", "outside the allowed root"),
        ({"dataset": "link.npz"}, "dataset", "outside the allowed root"),
        ({"output_dir": "../escape"}, "output_dir", "'..'"),
        ({"output_dir": str(outside / "o")}, "output_dir", "outside the allowed root"),
        ({"teacher": "teacher.pt"}, "teacher", "TorchScript"),
        ({"teacher": "/etc/passwd"}, "teacher", "outside the allowed root"),
    ]
    before = sorted(outside.rglob("*"))

    async def go():
        async with Client(_server(roots)) as client:
            return [await client.call_tool("kd_run_quick_distill", {**QUICK, **args}) for args, _, _ in attacks]

    for result, (_, field, words) in zip(anyio.run(go), attacks):
        assert result.is_error, field
        assert field in text_of(result) and words in text_of(result), text_of(result)
    assert sorted(outside.rglob("*")) == before and not marker.exists()
    assert _files(roots / "out") == []


def test_raw_diagnosis_bound_over_mcp(roots):
    async def go():
        async with Client(_server(roots)) as client:
            return await client.call_tool("kd_diagnose_failure", {"labels": [0] * 20001, "student_probs": [[1.0, 0.0]] * 20001})

    result = anyio.run(go)
    assert result.is_error and "20000" in text_of(result) and "summarise" in text_of(result)


def test_cli_and_mcp_accept_the_same_fields():
    from skill.distill.config import DistillConfig

    async def go():
        async with Client(build_server()) as client:
            return {t.name: t for t in (await client.list_tools()).tools}["kd_run_quick_distill"]

    tool = anyio.run(go)
    assert set(tool.input_schema["properties"]) == set(DistillConfig.model_fields)
    a = tool.annotations
    assert (a.read_only_hint, a.destructive_hint, a.idempotent_hint, a.open_world_hint) == (False, False, False, False)
    assert tool.output_schema and "distilled" in tool.output_schema["properties"]
