"""From a finished run to a ship decision: the run folder's evidence, `from_run` on diagnose / gates / score, and
`kd-skill release-check` (CLI and the kd_release_check MCP tool).

Fast tests read generation_evidence.json files the tests write in the TRL recipe's documented shape. The slow ones
train for real: the exported torchrun recipe on digits with 2 CPU processes, --baseline and --student-sizes; and a
run whose training split lacks one class, which the release check must catch as an accuracy mirage from the run's
own files. Damaged and oversized predictions.npz files are cut from the real run's folder.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import anyio
import numpy as np
import pytest
from mcp import Client

from mcp_server.server import build_server
from skill.distill.jobs import Limits
from skill.rules import get_rules
from tests.mcp_helpers import text_of

ROOT = Path(__file__).resolve().parents[1]
GOOD_GENERATION = {
    "kind": "generation",
    "schema_version": 1,
    "heldout": {
        "n_sequences": 64,
        "n_tokens": 5120,
        "student_nll_per_token": 2.31,
        "teacher_nll_per_token": 2.05,
        "token_kl_teacher_to_student": 0.21,
        "greedy_next_token_agreement": 0.71,
    },
    "samples": [
        {"prompt": f"Q{i}: what is {i} + {i}?", "teacher": f"{2 * i}", "student": f"{2 * i}"} for i in range(5)
    ],
    "models": {
        "student_params": 124_000_000,
        "teacher_params": 1_500_000_000,
        "student_bytes": 248_000_000,
        "teacher_bytes": 3_000_000_000,
    },
}


def _cli(*args: str, cwd: Path = ROOT, timeout: float = 120) -> tuple[int, dict | None, str, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "skill", *args], capture_output=True, text=True, cwd=cwd, timeout=timeout
    )
    try:
        data = json.loads(proc.stdout) if proc.stdout.strip().startswith("{") else None
    except ValueError:
        data = None
    return proc.returncode, data, proc.stdout, proc.stderr


def _generation_run(folder: Path, **changes: object) -> Path:
    """A TRL run folder with generation_evidence.json in the documented shape, `changes` applied ('a.b' keys)."""
    document = json.loads(json.dumps(GOOD_GENERATION))
    for key, value in changes.items():
        *path, last = key.split(".")
        target = document
        for part in path:
            target = target[part]
        if value is None:
            del target[last]
        else:
            target[last] = value
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "generation_evidence.json").write_text(json.dumps(document))
    return folder


# ---- generation runs (fast) -------------------------------------------------------------------------


def test_a_generation_run_is_checked_with_the_gates_that_fit_generation(tmp_path):
    run = _generation_run(tmp_path / "llm")
    code, data, _, err = _cli("release-check", str(run), "--rollback-plan", "true", "--degradation-alerts", "true")
    assert code == 0, err
    assert data["kind"] == "generation" and data["diagnosis"] is None
    checks = {c["id"]: c for c in data["generation_checks"]}
    ratio = float(np.exp(2.31 - 2.05))
    assert (
        checks["perplexity_ratio"]["value"] == pytest.approx(ratio, abs=1e-5)
        and checks["perplexity_ratio"]["status"] == "pass"
    )
    assert (
        checks["token_kl"]["status"]
        == checks["greedy_agreement"]["status"]
        == checks["heldout_tokens"]["status"]
        == "pass"
    )
    # the classification-only gates are not conditions of a generation release; the deployment facts still are
    not_applicable = get_rules().release["generation"]["not_applicable_gates"]
    assert not any(g in c for c in data["conditions"] for g in not_applicable)
    assert any("robustness_suite" in c for c in data["conditions"]) and not any(
        "rollback_plan" in c for c in data["conditions"]
    )
    assert (
        data["decision"] == "ship_with_conditions" and "0.710" in data["summary"] and "12.1x smaller" in data["summary"]
    )
    assert (
        "accuracy" in data["score_missing"]
        and len(data["samples"]) == get_rules().release["limits"]["max_samples_shown"]
    )
    filled = {v["field"]: v["source"] for v in data["run_evidence"]["filled"]}
    assert filled["compression_ratio"].startswith("generation_evidence.json") and filled["memory_mb"].startswith(
        "generation_evidence.json"
    )


def test_a_generation_student_far_from_its_teacher_is_not_shipped(tmp_path):
    run = _generation_run(
        tmp_path / "llm", **{"heldout.token_kl_teacher_to_student": 1.7, "heldout.greedy_next_token_agreement": 0.31}
    )
    code, data, _, err = _cli("release-check", "--run-dir", str(run))
    assert code == 0, err
    assert data["decision"] == "do_not_ship"
    assert any(b.startswith("token_kl: token_kl_teacher_to_student 1.7 ") for b in data["blockers"])
    assert any(b.startswith("greedy_agreement:") for b in data["blockers"]) and "Do not ship." in data["summary"]


def test_every_gate_settled_and_every_check_passed_ships_and_a_blown_budget_does_not(tmp_path):
    run = _generation_run(tmp_path / "llm")
    facts = [
        "--bias-monitoring",
        "true",
        "--edge-case-monitoring",
        "true",
        "--robustness-suite",
        "true",
        "--cascade-evaluated",
        "true",
        "--rollback-plan",
        "true",
        "--degradation-alerts",
        "true",
        "--latency-ms",
        "35",
        "--latency-budget-ms",
        "50",
        "--accuracy",
        "0.8",
        "--accuracy-target",
        "0.75",
    ]
    code, data, _, err = _cli("release-check", str(run), *facts, "--memory-budget-mb", "512")
    assert code == 0, err
    assert (
        data["decision"] == "ship"
        and data["blockers"] == data["conditions"] == []
        and data["summary"].startswith("Ship.")
    )
    assert "latency_ms" not in {
        m["field"] for m in data["run_evidence"]["missing"]
    }  # the caller measured it; a TRL run has none
    code, data, _, err = _cli(
        "release-check", str(run), *facts, "--memory-budget-mb", "100"
    )  # the student's 248 MB weights
    assert code == 0, err
    assert data["decision"] == "do_not_ship" and [b.split(" (")[0] for b in data["blockers"]] == [
        "gate budgets_met fails"
    ]


@pytest.mark.parametrize(
    "change, words",
    [
        ({"heldout.n_tokens": None}, "heldout.n_tokens"),
        ({"heldout.student_nll_per_token": "2.3"}, "heldout.student_nll_per_token"),
        ({"heldout.greedy_next_token_agreement": 1.5}, "greedy_next_token_agreement"),
        ({"models.student_params": 1.5}, "models.student_params"),
        ({"schema_version": 2}, "schema_version"),
        ({"samples": [{"prompt": "p", "teacher": "t"}]}, "samples"),
    ],
)
def test_generation_evidence_in_another_shape_is_refused_in_one_line(tmp_path, change, words):
    run = _generation_run(tmp_path / "llm", **change)
    code, data, _, err = _cli("release-check", str(run))
    assert code == 2 and data is None and len(err.strip().splitlines()) == 1, err
    assert err.startswith("kd-skill: error: run_dir:") and "generation_evidence.json" in err and words in err


def test_a_folder_without_evidence_is_refused_naming_what_is_missing(tmp_path):
    (tmp_path / "empty").mkdir()
    for args in (["release-check", str(tmp_path / "empty")], ["diagnose", "--from-run", str(tmp_path / "empty")]):
        code, _, _, err = _cli(*args)
        assert code == 2 and len(err.strip().splitlines()) == 1 and "evidence.json" in err and "Traceback" not in err


def test_over_mcp_a_run_folder_must_lie_under_the_data_root(tmp_path):
    data = tmp_path / "data"
    _generation_run(data / "runs" / "llm")
    _generation_run(tmp_path / "elsewhere")
    server = build_server(Limits(data_root=data, output_root=tmp_path / "out"))

    async def go() -> tuple:
        async with Client(server) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            good = await client.call_tool("kd_release_check", {"run_dir": "runs/llm"})
            gates = await client.call_tool("kd_check_quality_gates", {"from_run": "runs/llm", "rollback_plan": True})
            bad = [
                await client.call_tool(tool, {key: path})
                for tool, key in (("kd_release_check", "run_dir"), ("kd_score_distillation", "from_run"))
                for path in ("../elsewhere", str(tmp_path / "elsewhere"))
            ]
            return names, good, gates, bad

    names, good, gates, bad = anyio.run(go)
    assert "kd_release_check" in names
    assert not good.is_error and good.structured_content["decision"] == "ship_with_conditions"
    assert not gates.is_error and gates.structured_content["run_evidence"]["overridden"] == []
    assert "rollback_plan" not in {
        m["field"] for m in gates.structured_content["run_evidence"]["missing"]
    }  # given by the caller
    for result in bad:
        assert result.is_error and ("outside the allowed root" in text_of(result) or "'..'" in text_of(result)), (
            text_of(result)
        )


def _recipe_data_module():
    """The exported recipe's kd_recipe/data.py, imported from the template folder; afterwards nothing else in this
    process sees the template package (the module object stays usable)."""
    import importlib

    templates = str(ROOT / "skill" / "export" / "templates")
    sys.path.insert(0, templates)
    try:
        return importlib.import_module("kd_recipe.data")
    finally:
        sys.path.remove(templates)
        for name in [m for m in sys.modules if m == "kd_recipe" or m.startswith("kd_recipe.")]:
            del sys.modules[name]


def test_a_csv_group_column_is_evidence_not_a_feature(tmp_path):
    """The recipe's CSV reader (the exported kd_recipe/data.py, imported from the template folder) takes the named
    group column out of the features and returns it for the test rows."""
    data = _recipe_data_module()
    rows = ["a,b,site,label"] + [f"{i},{i * 2},{'north' if i % 2 else 'south'},{i % 3}" for i in range(40)]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    train, test, groups = data.load_data("t.csv", tmp_path, None, "site", 0.25, 0)
    assert train.tensors[0].shape == (30, 2) and test.tensors[0].shape == (10, 2) and len(groups) == 10
    a_values = test.tensors[0][:, 0].int().tolist()
    assert groups.tolist() == ["north" if a % 2 else "south" for a in a_values]  # each test row keeps its own group
    with pytest.raises(ValueError, match="data.groups: 'region' is not a column"):
        data.load_data("t.csv", tmp_path, None, "region", 0.25, 0)


def test_the_torchrun_export_records_what_the_release_check_reads(tmp_path):
    """engine_options: alpha and its reason land in config.yaml's release section, groups and student sizes in the
    settings train.py reads; options that cannot work are refused at export, naming engine_options."""
    from skill.errors import InputError
    from skill.export import export_recipe
    from skill.export.request import ExportRequest

    options = {"alpha": 0.7, "alpha_reason": "phone app", "student_sizes": [20, 22]}
    answer = export_recipe(ExportRequest(data="digits", output_dir=str(tmp_path / "r"), engine_options=options))
    settings = {s.name: s for s in answer.settings}
    assert settings["release.alpha"].value == 0.7 and settings["release.alpha"].evidence == "set in the export request"
    assert settings["release.alpha_reason"].value == "phone app" and settings["train.student_sizes"].value == [20, 22]
    limits = get_rules().failure_modes["raw_limits"]
    assert settings["eval.max_prediction_rows"].value == limits["max_samples"]
    assert settings["eval.max_prediction_values"].value == limits["max_values"]
    default = export_recipe(ExportRequest(data="digits", output_dir=str(tmp_path / "d")))
    alpha = next(s for s in default.settings if s.name == "release.alpha")
    balanced = next(b for b in get_rules().alpha["tree"] if "when" not in b)
    assert alpha.value == balanced["alpha"] and alpha.evidence.startswith("alpha.yaml")
    for bad, words in (
        ({"groups": "g"}, "groups 'g' is read from a .npz array or a .csv column"),
        ({"colour": "red"}, "no engine options but groups, student_sizes, alpha, alpha_reason"),
        ({"student_sizes": [8, 16, 24, 32]}, "student_sizes"),
    ):
        with pytest.raises(InputError, match="engine_options") as caught:
            export_recipe(ExportRequest(data="digits", output_dir=str(tmp_path / "bad"), engine_options=bad))
        assert words in str(caught.value)


# ---- real runs of the exported torchrun recipe (slow) ------------------------------------------------

TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]
STUDENT_HIDDEN = 24  # 1,810 parameters on digits; widths 22 and 20 are within 10% steps of it and of each other


def _train(recipe: Path, *args: str, processes: int = 1) -> Path:
    launcher = [*TORCHRUN, "--standalone", "--nproc_per_node", str(processes)] if processes > 1 else [sys.executable]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [*launcher, str(recipe / "train.py"), "--cpu", *args],
        cwd=recipe,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return recipe / "run"


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory) -> Path:
    from skill.export import export_recipe
    from skill.export.request import ExportRequest

    root = tmp_path_factory.mktemp("release")
    export_recipe(
        ExportRequest(
            data="digits",
            output_dir=str(root / "recipe"),
            teacher_epochs=15,
            epochs=30,
            student_hidden=[STUDENT_HIDDEN],
        )
    )
    return _train(root / "recipe", "--baseline", "--student-sizes", "20,22", processes=2)


@pytest.mark.slow
def test_the_run_writes_its_evidence(digits_run):
    evidence = json.loads((digits_run / "evidence.json").read_text())
    metrics = json.loads((digits_run / "metrics.json").read_text())
    with np.load(digits_run / "predictions.npz", allow_pickle=False) as arrays:
        labels, student, teacher, scratch = (
            arrays[k] for k in ("labels", "student_probs", "teacher_probs", "baseline_probs")
        )
    assert (
        len(labels) == evidence["test_rows"] == metrics["student"]["test_rows"]
        and not evidence["predictions"]["sampled"]
    )
    assert student.shape == teacher.shape == scratch.shape == (len(labels), 10) and np.allclose(
        student.sum(1), 1, atol=1e-5
    )
    # per-class accuracy in evidence.json (all-reduced over both ranks) is what the saved predictions give
    s = evidence["models"]["student"]
    for c, accuracy in s["per_class_accuracy"].items():
        rows = labels == int(c)
        assert s["class_support"][c] == rows.sum() and accuracy == pytest.approx(
            (student[rows].argmax(1) == int(c)).mean()
        )
    assert (
        s["accuracy"]
        == pytest.approx(metrics["student"]["accuracy"])
        == pytest.approx((student.argmax(1) == labels).mean())
    )
    assert s["params"] == 64 * 24 + 24 + 24 * 10 + 10 and s["bytes"] == 4 * s["params"]
    assert (
        evidence["models"]["teacher"]["params"] == metrics["teacher"]["params"]
        and s["latency_ms_batch1"] > 0
        and s["throughput_per_s"] > 0
    )
    assert [p["params"] for p in evidence["size_accuracy_curve"]] == [
        1810,
        1510,
        1660,
    ]  # the student, then widths 20 and 22
    # what the run trained with, recorded at run time from config.yaml (a later re-export cannot change it)
    import yaml

    config = yaml.safe_load((digits_run.parent / "config.yaml").read_text())
    settings = evidence["settings"]
    assert settings["alpha"] == config["release"]["alpha"]["value"] and settings["alpha_evidence"]
    assert settings["temperature"] == config["distill"]["temperature"]["value"]
    assert settings["temperature_evidence"] == config["distill"]["temperature"]["evidence"]
    assert settings["topology"] == "teacher_student" and "class_names" not in settings or not settings["class_names"]


@pytest.mark.slow
def test_release_check_on_the_digits_run(digits_run):
    code, data, _, err = _cli(
        "release-check",
        str(digits_run),
        "--latency-budget-ms",
        "50",
        "--memory-budget-mb",
        "1",
        "--accuracy-target",
        "0.5",
    )
    assert code == 0, err
    findings = {f["id"]: f for f in data["diagnosis"]["findings"]}
    assert findings["accuracy_mirage"]["status"] in ("detected", "clear")
    assert any(
        e["metric"].startswith("minority_class_accuracy[") for e in findings["accuracy_mirage"]["evidence"]
    )  # per-class evidence
    cliff = findings["capacity_cliff"]
    assert cliff["status"] in (
        "detected",
        "clear",
    )  # evaluated on the three sizes (pairs without a drop leave no evidence row)
    assert {e["metric"] for e in cliff["evidence"]} <= {"1810->1660 params", "1810->1510 params", "1660->1510 params"}
    filled = {v["field"]: v["source"] for v in data["run_evidence"]["filled"]}
    for field in (
        "latency_ms",
        "memory_mb",
        "accuracy",
        "compression_ratio",
        "per_class_thresholds_met",
        "calibration_validated",
        "capacity_analysis_done",
        "size_accuracy_curve",
        "labels",
        "student_probs",
        "teacher_probs",
        "alpha",
    ):
        assert field in filled, field
    budgets = next(g for g in data["gates"]["gates"] if g["id"] == "budgets_met")
    assert budgets["status"] == "pass"  # a 1,810-parameter MLP: well under 50 ms and 1 MB, and above 0.5
    evidence = json.loads((digits_run / "evidence.json").read_text())
    assert data["baseline_comparison"]["distilled_accuracy"] == pytest.approx(evidence["models"]["student"]["accuracy"])
    assert data["decision"] in ("ship_with_conditions", "do_not_ship")  # monitoring and rollback are never in a run
    assert f"{evidence['models']['student']['accuracy']:.4f}" in data["summary"]
    code, _, text, _ = _cli("release-check", str(digits_run), "--format", "text")
    assert code == 0 and text.startswith(f"Decision: {data['decision']}") and "latency_ms <- evidence.json" in text
    print(text)  # the closing note quotes it


@pytest.mark.slow
def test_from_run_fills_the_tools_and_the_callers_numbers_win(digits_run):
    evidence = json.loads((digits_run / "evidence.json").read_text())
    t, s = evidence["models"]["teacher"], evidence["models"]["student"]
    code, data, _, err = _cli("score", "--from-run", str(digits_run), "--alpha", "0.7")
    assert code == 0, err
    expected = 0.7 * s["params"] / t["params"] + 0.3 * (1 - s["accuracy"] / t["accuracy"])
    assert data["score"] == pytest.approx(expected) and data["run_evidence"]["overridden"] == ["alpha"]
    code, gates, _, err = _cli("gates", "--from-run", str(digits_run), "--alpha", "0.7", "--alpha-reason", "phone app")
    assert code == 0, err
    assert next(g for g in gates["gates"] if g["id"] == "distillation_score")["status"] == "pass"
    ds = next(t for t in gates["rule_trace"] if t["field"] == "distillation_score")
    assert ds["value"] == pytest.approx(expected, abs=1e-6)  # the score at the caller's alpha, not the plan's
    assert {v["field"] for v in data["run_evidence"]["filled"]} == {
        "teacher_size",
        "teacher_accuracy",
        "student_size",
        "student_accuracy",
    }
    code, data, _, err = _cli("diagnose", "--from-run", str(digits_run), "--training-temperature", "1")
    assert code == 0, err
    assert data["run_evidence"]["overridden"] == ["training_temperature"] and "trained_at_t1" in {
        w["id"] for w in data["warnings"]
    }
    assert data["metrics"]["n_samples"] == evidence["test_rows"]
    assert {m["field"] for m in data["run_evidence"]["missing"]} >= {"groups", "student_finds_edge_cases"}


@pytest.mark.slow
def test_a_collapsed_class_is_caught_as_an_accuracy_mirage(tmp_path):
    """The training split lacks every 3 (the test split keeps them): the student never predicts 3, whatever its
    average; the release check finds it from the run's own files. The same run names a group array (the bias check
    then runs on the saved groups) and keeps only 200 test rows of probabilities (a sample: the per-class numbers
    then come from evidence.json, counted over the whole test set)."""
    from sklearn.datasets import load_digits

    from skill.export import export_recipe
    from skill.export.request import ExportRequest

    X, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))
    train, test = order[:1344], order[1344:]
    train = train[y[train] != 3]
    data = tmp_path / "no_threes.npz"
    groups = np.where(X[test][:, 36] > 8, "dark_centre", "light_centre")  # a property of each test image
    np.savez(
        data,
        X_train=(X[train] / 16).astype(np.float32),
        y_train=y[train],
        X_test=(X[test] / 16).astype(np.float32),
        y_test=y[test],
        groups_test=groups,
    )
    recipe = tmp_path / "recipe"
    export_recipe(
        ExportRequest(
            data=str(data),
            output_dir=str(recipe),
            teacher_epochs=10,
            epochs=20,
            student_hidden=[24],
            engine_options={"groups": "groups_test"},
        )
    )
    config = (recipe / "config.yaml").read_text()
    (recipe / "config.yaml").write_text(
        config.replace("max_prediction_rows:\n    value: 20000", "max_prediction_rows:\n    value: 200")
    )
    run = _train(recipe)
    evidence = json.loads((run / "evidence.json").read_text())
    with np.load(run / "predictions.npz", allow_pickle=False) as arrays:
        assert (
            len(arrays["labels"]) == 200 and evidence["predictions"]["sampled"] and evidence["test_rows"] == len(test)
        )
        assert set(arrays["groups"].tolist()) == {"dark_centre", "light_centre"}
    assert (
        evidence["models"]["student"]["per_class_accuracy"]["3"] == 0
        and evidence["models"]["student"]["class_support"]["3"] > 0
    )
    code, report, _, err = _cli("release-check", str(run))
    assert code == 0, err
    mirage = next(f for f in report["diagnosis"]["findings"] if f["id"] == "accuracy_mirage")
    assert mirage["status"] == "detected" and "class 3 reaches 0.000" in mirage["diagnosis"]
    filled = {v["field"]: v["source"] for v in report["run_evidence"]["filled"]}
    assert "whole test set" in filled["per_class_accuracy"] and filled["groups"] == "predictions.npz groups"
    assert (
        next(f for f in report["diagnosis"]["findings"] if f["id"] == "bias_amplification")["status"] != "not_evaluated"
    )
    assert not any(w["id"] == "raw_and_summary_mixed" for w in report["warnings"])  # one run's numbers, not a mix
    assert report["decision"] == "do_not_ship" and any(b.startswith("accuracy_mirage:") for b in report["blockers"])
    stratified = next(g for g in report["gates"]["gates"] if g["id"] == "stratified_validation")
    assert stratified["status"] == "fail"
    _, _, text, _ = _cli("release-check", str(run), "--format", "text")
    print(text)  # the closing note quotes it


@pytest.mark.slow
def test_a_damaged_or_oversized_predictions_file_gets_one_line(digits_run, tmp_path):
    def folder(name: str) -> Path:
        copy = tmp_path / name
        copy.mkdir()
        shutil.copy(digits_run / "evidence.json", copy)
        return copy

    truncated = folder("truncated")
    data = (digits_run / "predictions.npz").read_bytes()
    (truncated / "predictions.npz").write_bytes(data[: len(data) // 2])
    pickled = folder("pickled")
    np.savez(pickled / "predictions.npz", labels=np.arange(3), student_probs=np.array([{"a": 1}] * 3, dtype=object))
    wrong = folder("wrong")
    np.savez(wrong / "predictions.npz", labels=np.arange(3), student_probs=np.ones((4, 10), np.float32) / 10)
    huge = folder("huge")
    limit = get_rules().release["limits"]["max_predictions_bytes"]
    with (huge / "predictions.npz").open("wb") as handle:  # sparse: past the limit without writing it
        handle.truncate(limit + 1)
    missing = folder("missing")
    cases = [
        (truncated, "is damaged"),
        (pickled, "is damaged"),
        (wrong, "student_probs must be float rows x classes for 3 labels"),
        (huge, f"is too large: {limit + 1:,} bytes, at most {limit:,}"),
        (missing, "predictions.npz"),
    ]
    for run, words in cases:
        for args in (["release-check", str(run)], ["diagnose", "--from-run", str(run)]):
            code, _, _, err = _cli(*args)
            assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
            assert "predictions.npz" in err and words in err, err


# ---- review of issue 21: generation evidence the recipe writes itself ------------------------------------------


def _release(run: Path, **facts: object) -> dict:
    """release_check in this process (the CLI path is covered above), as the JSON a caller gets."""
    from skill.release import ReleaseCheckRequest, release_check
    from skill.run_evidence import ANYWHERE, RUN_ROOT

    token = RUN_ROOT.set(ANYWHERE)
    try:
        return release_check(ReleaseCheckRequest(run_dir=str(run), **facts)).model_dump(mode="json")
    finally:
        RUN_ROOT.reset(token)


def _refusal(run: Path) -> str:
    from skill.errors import InputError

    with pytest.raises(InputError) as caught:
        _release(run)
    return str(caught.value)


def test_the_trl_recipes_own_evidence_with_an_api_teacher_or_two_tokenizers_is_read(tmp_path):
    """write_generation_evidence (the exported TRL recipe's writer) leaves nulls for an API teacher and for two
    tokenizers; the release check reads both, marks what cannot be measured as unknown, and never compares NLLs
    in different token units."""
    pytest.importorskip("transformers")
    sys.path.insert(0, str(ROOT / "skill" / "export" / "templates"))
    try:
        import trl_evidence
        from tests.test_export_trl import SENTENCES, _tokenizer
    finally:
        sys.path.remove(str(ROOT / "skill" / "export" / "templates"))
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    tok, tok2 = _tokenizer(SENTENCES, 300), _tokenizer(SENTENCES[::-1] + ["other words here"], 280)

    def model(t: object, hidden: int) -> LlamaForCausalLM:
        return LlamaForCausalLM(LlamaConfig(
            vocab_size=len(t), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=1,
            num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=128, pad_token_id=t.pad_token_id,
            bos_token_id=t.bos_token_id, eos_token_id=t.eos_token_id))

    rows = [{"prompt": s, "completion": " " + s} for s in SENTENCES]
    student = model(tok, 32)
    (tmp_path / "api").mkdir()
    (tmp_path / "two").mkdir()
    trl_evidence.write_generation_evidence(tmp_path / "api" / "generation_evidence.json", student, tok, rows,
                                           max_new_tokens=2)
    trl_evidence.write_generation_evidence(tmp_path / "two" / "generation_evidence.json", student, tok, rows,
                                           teacher=model(tok2, 64), teacher_tokenizer=tok2, max_new_tokens=2)
    api, two = _release(tmp_path / "api"), _release(tmp_path / "two")
    for data in (api, two):
        checks = {c["id"]: c for c in data["generation_checks"]}
        assert checks["perplexity_ratio"]["status"] == "unknown" and checks["perplexity_ratio"]["value"] is None
        assert checks["token_kl"]["status"] == checks["greedy_agreement"]["status"] == "unknown"
        assert all(c["source"] for c in checks.values())
        assert any(c.startswith("perplexity_ratio: perplexity_ratio not measured") for c in data["conditions"])
        assert data["decision"] != "ship" and "not measured" in data["summary"]
    api_checks = {c["id"]: c for c in api["generation_checks"]}
    two_checks = {c["id"]: c for c in two["generation_checks"]}
    assert "API or served teacher" in api_checks["perplexity_ratio"]["reason"]
    assert "different token units" in two_checks["perplexity_ratio"]["reason"]
    assert "teacher size unknown" in api["summary"] and "different tokenizers" in two["summary"]


@pytest.mark.parametrize(
    "change, words",
    [
        ({"heldout.n_tokens": 0, "heldout.n_sequences": 0}, "per-token mean over no token"),
        ({"models.student_params": 0}, "at least 1"),
        ({"models.student_params": 15_000_000_000}, "roles swapped"),
        ({"samples": [{"prompt": "p", "teacher": "t", "student": "s", "evil": {"x": 1}}]}, "exactly the string keys"),
        ({"heldout.token_kl_teacher_to_student": "x" * 5000}, "..."),
    ],
)
def test_impossible_generation_evidence_is_refused_naming_the_file(tmp_path, change, words):
    message = _refusal(_generation_run(tmp_path / "llm", **change))
    assert "generation_evidence.json is damaged" in message and words in message and len(message) < 400, message


def test_both_evidence_files_in_one_folder_are_refused_and_huge_numbers_print_short(tmp_path):
    run = _generation_run(tmp_path / "llm")
    (run / "evidence.json").write_text(json.dumps({"kind": "classification", "schema_version": 1}))
    message = _refusal(run)
    assert "both evidence.json" in message and "generation_evidence.json" in message
    data = _release(_generation_run(tmp_path / "huge", **{"heldout.student_nll_per_token": 1e300}))
    assert data["decision"] == "do_not_ship" and len(data["summary"]) < 2000
    assert "1e+300" in data["summary"] and not any(len(b) > 600 for b in data["blockers"])


# ---- review of issue 21: classification run folders built here -------------------------------------------------


def _probs_for(labels: np.ndarray, right: np.ndarray, classes: int, confidence: np.ndarray | float) -> np.ndarray:
    """Probability rows whose argmax is the label where `right`, the next class elsewhere, with that top value."""
    n = len(labels)
    top = np.broadcast_to(np.asarray(confidence, dtype=np.float64), (n,))
    pred = np.where(right, labels, (labels + 1) % classes)
    probs = np.tile(((1 - top) / (classes - 1))[:, None], (1, classes))
    probs[np.arange(n), pred] = top
    return probs.astype(np.float32)


def _class_run(folder: Path, labels: np.ndarray, probs: dict[str, np.ndarray], *, groups: np.ndarray | None = None,
               curve: list[tuple[str, int, float]] | None = None, settings: dict | None = None,
               edit: object = None) -> Path:
    """A torchrun-shaped run folder (evidence.json + predictions.npz) computed from the arrays given, as
    kd_recipe/evidence.py writes it; `edit(document)` changes evidence.json afterwards."""
    folder.mkdir(parents=True, exist_ok=True)
    n, classes = len(labels), next(iter(probs.values())).shape[1]
    sizes = {"teacher": 85002, "student": 1810, "baseline": 1810}
    models = {}
    for name, p in probs.items():
        pred = p.argmax(1)
        support = {str(c): int((labels == c).sum()) for c in np.unique(labels)}
        models[name] = {
            "accuracy": float((pred == labels).mean()),
            "ece": 0.02,
            "test_rows": n,
            "per_class_accuracy": {c: float((pred[labels == int(c)] == int(c)).mean()) for c in support},
            "class_support": support,
            "params": sizes.get(name, 1500),
            "bytes": 4 * sizes.get(name, 1500),
            "latency_ms_batch1": 0.02,
            "device": "cpu",
        }
    document = {
        "kind": "classification", "schema_version": 1, "test_rows": n, "classes": classes,
        "predictions": {"file": "predictions.npz", "rows": n, "sampled": False, "groups": None},
        "models": models,
        "size_accuracy_curve": [{"name": a, "params": b, "accuracy": c} for a, b, c in (curve or [])],
        "settings": {"method": "response", "temperature": 4.0, "kd_loss_weight": 0.9, **(settings or {})},
    }
    if callable(edit):
        edit(document)
    (folder / "evidence.json").write_text(json.dumps(document))
    arrays = {"labels": labels.astype(np.int64), **{f"{k}_probs": v for k, v in probs.items()}}
    if groups is not None:
        arrays["groups"] = groups.astype(str)
    np.savez_compressed(folder / "predictions.npz", **arrays)
    return folder


def _even_run(folder: Path, n: int = 400, classes: int = 4, student_hits: float = 0.9, seed: int = 0,
              **kwargs: object) -> Path:
    """Balanced classes, a teacher right on 95% and a student on `student_hits` of rows at random."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    teacher = _probs_for(labels, rng.random(n) < 0.95, classes, 0.8)
    student = _probs_for(labels, rng.random(n) < student_hits, classes, 0.8)
    return _class_run(folder, labels, {"teacher": teacher, "student": student}, **kwargs)


def test_evidence_and_predictions_that_disagree_are_refused_and_one_class_is_warned(tmp_path):
    run = _even_run(tmp_path / "ok")
    assert _release(run)["kind"] == "classification"
    labels = np.load(run / "predictions.npz")["labels"]
    arrays = dict(np.load(run / "predictions.npz"))
    arrays["labels"] = np.zeros_like(labels)  # the arrays say ~25%, evidence.json ~90%
    np.savez(run / "predictions.npz", **arrays)
    message = _refusal(run)
    assert "evidence.json and predictions.npz disagree" in message and "accuracy" in message, message
    short = _even_run(tmp_path / "short", edit=lambda d: d["predictions"].update(rows=399, sampled=True))
    assert "predictions.rows is 399" in _refusal(short)
    one = np.zeros(60, dtype=np.int64)
    one_class = _class_run(tmp_path / "one", one, {"teacher": _probs_for(one, np.ones(60, bool), 3, 0.9),
                                                   "student": _probs_for(one, np.ones(60, bool), 3, 0.9)})
    data = _release(one_class)
    assert data["decision"] != "ship" and any("one class" in c for c in data["conditions"])
    assert any(w["id"] == "one_class_test_set" for w in data["warnings"])


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda d: d.update(models=[1, 2]), "models"),
        (lambda d: d.update(models=None), "models"),
        (lambda d: d.update(predictions="x"), "predictions"),
        (lambda d: d.update(settings=[1]), "settings"),
        (lambda d: d.update(size_accuracy_curve=[{"name": "a", "params": 100}, {"name": "b", "params": 90}]),
         "size_accuracy_curve.0.accuracy"),
        (lambda d: d["models"]["student"].update(ece="a"), "models.student.ece"),
        (lambda d: d["models"]["student"].update(params=-5), "models.student.params"),
        (lambda d: d["models"]["student"].update(params=True), "models.student"),
        (lambda d: d["models"]["student"].update(accuracy=float("nan")), "models.student.accuracy"),
        (lambda d: d["models"]["student"].update(latency_ms_batch1=float("inf")), "models.student.latency_ms_batch1"),
        (lambda d: d["models"]["student"].update(device="x" * 10000), "models.student.device"),
        (lambda d: d["models"]["teacher"].update(accuracy=1.7), "models.teacher.accuracy"),
    ],
)
def test_evidence_json_outside_its_schema_is_refused_in_one_line(tmp_path, edit, words):
    message = _refusal(_even_run(tmp_path / "bad", edit=edit))
    assert "evidence.json is damaged" in message and words in message, message
    assert len(message) < 500 and "\n" not in message and "Traceback" not in message


def test_an_npy_header_declaring_gigabytes_is_refused_before_loading(tmp_path):
    """A 1 KB npz whose .npy header declares (1e9, 10) floats: refused from the header, nothing allocated."""
    import io
    import zipfile

    run = _even_run(tmp_path / "bomb")
    good = dict(np.load(run / "predictions.npz"))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for key, array in good.items():
            if key != "student_probs":
                member = io.BytesIO()
                np.save(member, array)
                archive.writestr(key + ".npy", member.getvalue())
        header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000, 10), }"
        header = header + " " * (118 - len(header)) + "\n"
        archive.writestr("student_probs.npy", b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little")
                         + header.encode() + b"\0" * 100)
    (run / "predictions.npz").write_bytes(buffer.getvalue())
    message = _refusal(run)
    assert "predictions.npz is damaged" in message and "declares shape (1000000000, 10)" in message, message


def test_the_plan_recorded_by_the_run_wins_over_a_re_exported_config_and_each_number_says_its_source(tmp_path):
    """A config.yaml re-exported after the run (other T, other alpha) must not change what the run trained with; a
    run folder moved away from its export keeps its alpha; an older run without the record says config.yaml is read
    now."""
    recorded = {"temperature": 4.0, "alpha": 0.7, "alpha_reason": "phone app", "alpha_evidence": "set in the export",
                "temperature_evidence": "tuned on the quick distill's validation split", "topology": "teacher_student"}
    run = _even_run(tmp_path / "export" / "run", settings=recorded)
    (tmp_path / "export" / "config.yaml").write_text(
        "distill: {temperature: {value: 1.0, evidence: 'method.yaml'}}\nrelease: {alpha: {value: 0.2}}\n")
    data = _release(run)
    filled = {v["field"]: v["source"] for v in data["run_evidence"]["filled"]}
    assert data["score"] is not None and "at evidence.json settings.alpha (0.7)" in filled["distillation_score"]
    assert filled["alpha"].startswith("evidence.json settings.alpha (recorded by the run)")
    assert filled["training_temperature"].startswith("evidence.json settings.temperature")
    assert filled["alpha_reason"].startswith("evidence.json")
    assert filled["temperature_tuned"].startswith("evidence.json")
    diagnosis = {e["metric"]: e["value"] for f in data["diagnosis"]["findings"] for e in f["evidence"]}
    assert diagnosis["training_temperature"] == 4.0
    moved = tmp_path / "moved"
    shutil.copytree(run, moved)
    assert {v["field"]: v["source"] for v in _release(moved)["run_evidence"]["filled"]}["alpha"].startswith(
        "evidence.json")
    old = _even_run(tmp_path / "old" / "run")
    (tmp_path / "old" / "config.yaml").write_text("release: {alpha: {value: 0.5, evidence: alpha.yaml}}\n")
    filled = {v["field"]: v["source"] for v in _release(old)["run_evidence"]["filled"]}
    assert "read now, not recorded by the run" in filled["alpha"]


# ---- review of issue 21: statistics before a verdict -------------------------------------------------------------


def _finding_of(data: dict, mode: str) -> dict:
    return next(f for f in data["diagnosis"]["findings"] if f["id"] == mode)


def test_error_confidence_within_noise_does_not_block_and_the_fix_fits_the_runs_temperature(tmp_path):
    """15 against 13 errors at 0.84 against 0.82 is noise; so is a 0.01 gap on 80 errors each. A real gap (0.93
    against 0.60 on 80 errors each) blocks, and the fix for a run already at T = 4 does not say 'distil at T in
    [3, 20]'."""
    rng = np.random.default_rng(1)

    def run(folder: str, n: int, wrong_s: int, wrong_t: int, conf_s: float, conf_t: float) -> dict:
        labels = np.arange(n) % 5
        hit_s, hit_t = np.ones(n, bool), np.ones(n, bool)
        hit_s[rng.choice(n, wrong_s, replace=False)] = False
        hit_t[rng.choice(n, wrong_t, replace=False)] = False
        noise = rng.uniform(-0.15, 0.15, n)
        student = _probs_for(labels, hit_s, 5, np.where(hit_s, 0.97, np.clip(conf_s + noise, 0.3, 0.99)))
        shuffled = rng.permutation(noise)
        teacher = _probs_for(labels, hit_t, 5, np.where(hit_t, 0.97, np.clip(conf_t + shuffled, 0.3, 0.99)))
        return _release(_class_run(tmp_path / folder, labels, {"teacher": teacher, "student": student}))

    few = _finding_of(run("few", 450, 15, 13, 0.843, 0.824), "temperature_blindness")
    assert few["status"] != "detected" and "15 student and 13 teacher errors" in few["diagnosis"]
    close = _finding_of(run("close", 1000, 80, 80, 0.83, 0.82), "temperature_blindness")
    assert close["status"] != "detected" and "includes 0" in close["diagnosis"], close["diagnosis"]
    data = run("real", 1000, 80, 80, 0.93, 0.60)
    real = _finding_of(data, "temperature_blindness")
    assert real["status"] == "detected" and data["decision"] == "do_not_ship"
    assert "T = 4" in real["fix"] and "[3, 20]" not in real["fix"] and "[3, 20]" not in real["diagnosis"]
    assert "Distil at a temperature between 3 and 20" not in real["fix"]


def test_bias_needs_groups_with_enough_rows_and_a_difference_beyond_noise(tmp_path):
    """Random one-row groups are not evaluated (no verdict, no block); a group that really loses its accuracy on 200
    rows is detected."""
    rng = np.random.default_rng(2)
    n = 400
    labels = np.arange(n) % 2
    teacher = _probs_for(labels, rng.random(n) < 0.95, 2, 0.9)
    student = _probs_for(labels, rng.random(n) < 0.9, 2, 0.9)
    tiny = _release(_class_run(tmp_path / "tiny", labels, {"teacher": teacher, "student": student},
                               groups=np.arange(n).astype(str)))
    finding = _finding_of(tiny, "bias_amplification")
    assert finding["status"] == "not_evaluated" and "fewer than two groups" in finding["diagnosis"]
    assert tiny["decision"] != "do_not_ship"
    groups = np.where(np.arange(n) < 200, "north", "south")
    hurt = np.where(groups == "south", rng.random(n) < 0.6, rng.random(n) < 0.95)
    hurt_student = _probs_for(labels, hurt, 2, 0.9)
    real = _release(_class_run(tmp_path / "real", labels, {"teacher": teacher, "student": hurt_student}, groups=groups))
    finding = _finding_of(real, "bias_amplification")
    assert finding["status"] == "detected" and "interval" in finding["diagnosis"] and real["decision"] == "do_not_ship"


def test_a_per_class_spread_within_noise_is_no_mirage_and_a_balanced_class_is_no_minority(tmp_path):
    """Four balanced classes of 40 rows at 0.70 / 0.80 / 0.85 / 0.925: a 0.225 point spread, but Wilson intervals
    overlap, so no collapse is declared; a class at 0 of 40 is one. Every finding and gate names its source."""
    labels = np.repeat(np.arange(4), 40)
    hits = np.concatenate([np.arange(40) < k for k in (28, 32, 34, 37)])
    teacher = _probs_for(labels, np.ones(160, bool), 4, 0.9)
    data = _release(_class_run(tmp_path / "even", labels, {"teacher": teacher,
                                                           "student": _probs_for(labels, hits, 4, 0.8)}))
    mirage = _finding_of(data, "accuracy_mirage")
    assert mirage["status"] == "clear" and "not beyond the noise" in mirage["diagnosis"]
    assert any("none is a minority" in e["metric"] for e in mirage["evidence"])
    assert not any("smallest support" in e["metric"] for e in mirage["evidence"])
    assert all(f["source"] for f in data["diagnosis"]["findings"]) and all(g["source"] for g in data["gates"]["gates"])
    assert "Wilson" in mirage["source"]
    collapsed = np.concatenate([np.arange(40) < k for k in (0, 38, 38, 38)])
    data = _release(_class_run(tmp_path / "collapsed", labels, {"teacher": teacher,
                                                                "student": _probs_for(labels, collapsed, 4, 0.8)}))
    assert _finding_of(data, "accuracy_mirage")["status"] == "detected" and data["decision"] == "do_not_ship"


def test_a_size_curve_without_close_sizes_leaves_the_capacity_cliff_not_evaluated_and_its_gate_unknown(tmp_path):
    """Sizes 1810, 1000 and 500 parameters are each more than 10% apart: no cliff can be seen, so it is not
    evaluated (not 'clear') and the gate is unknown, saying to rerun with closer --student-sizes."""
    curve = [("student", 1810, 0.9), ("student-w12", 1000, 0.7), ("student-w6", 500, 0.5)]
    far = _even_run(tmp_path / "far", curve=curve)
    data = _release(far)
    cliff = _finding_of(data, "capacity_cliff")
    assert cliff["status"] == "not_evaluated" and "--student-sizes" in cliff["diagnosis"]
    gate = next(g for g in data["gates"]["gates"] if g["id"] == "capacity_cliff_analysis")
    assert gate["status"] == "unknown"
    missing = {m["field"]: m["effect"] for m in data["run_evidence"]["missing"]}
    assert "--student-sizes" in missing["capacity_analysis_done"]
    close = _release(_even_run(tmp_path / "close", curve=[("student", 1810, 0.9), ("student-w22", 1660, 0.89)]))
    assert _finding_of(close, "capacity_cliff")["status"] == "clear"
    assert next(g for g in close["gates"]["gates"] if g["id"] == "capacity_cliff_analysis")["status"] == "pass"


def test_the_scratch_student_is_recommended_only_when_the_same_checks_pass_it_and_as_one_seed(tmp_path):
    rng = np.random.default_rng(3)
    n = 1000
    labels = np.arange(n) % 4
    teacher = _probs_for(labels, rng.random(n) < 0.95, 4, 0.95)
    student = _probs_for(labels, rng.random(n) < 0.85, 4, 0.85)
    hits = rng.random(n) < 0.93
    for name, confidence, words in (("overconfident", 0.999, "neither student ships as is"),
                                    ("calibrated", 0.93, "confirm over more seeds")):
        data = _release(_class_run(tmp_path / name, labels, {"teacher": teacher, "student": student,
                                                              "baseline": _probs_for(labels, hits, 4, confidence)}))
        assert data["baseline_comparison"]["verdict"] == "scratch_better"
        text = next(b for b in data["blockers"] if b.startswith("baseline:"))
        assert words in text and "one seed" in text and "ship the from-scratch student instead" not in text, text


def test_the_summary_names_the_alpha_used_and_next_steps_use_the_runs_own(tmp_path):
    run = _even_run(tmp_path / "r", settings={"alpha": 0.5, "alpha_reason": "balanced"})
    data = _release(run, alpha=0.1)
    assert "at alpha 0.1 (your --alpha)" in data["summary"] and "the plan's alpha" not in data["summary"]
    data = _release(run)
    assert "at alpha 0.5 (evidence.json settings.alpha" in data["summary"]
    assert all("--alpha 0.5" in s["cli"] for s in data["next_steps"]) and data["next_steps"]
    assert ". To settle before release" in data["summary"] or "Blocking" not in data["summary"]
    bare = _release(_even_run(tmp_path / "bare"))
    assert "or from_run" not in bare["score_missing"] and "alpha is not in the run" in bare["score_missing"]
    effect = {m["field"]: m["effect"] for m in bare["run_evidence"]["missing"]}["distillation_score"]
    assert "accuracy floor" not in effect and effect.startswith("not computed: the run records no alpha")


def test_generation_gates_that_do_not_apply_are_not_listed_as_unknown_and_the_cascade_fix_fits_an_llm(tmp_path):
    data = _release(_generation_run(tmp_path / "llm"))
    gates = {g["id"]: g for g in data["gates"]["gates"]}
    for gate in get_rules().release["generation"]["not_applicable_gates"]:
        assert gates[gate]["status"] == "pass" and "Not applicable to a generation run" in gates[gate]["reason"]
    assert "kd_run_quick_distill" not in gates["cascade_evaluated"]["fix"]
    assert not any("kd_run_quick_distill" in c for c in data["conditions"])
    assert data["gates"]["unknown"] == sum(g["status"] == "unknown" for g in data["gates"]["gates"])


def test_errors_in_a_runs_files_name_the_file_and_say_the_numbers_came_from_the_run(tmp_path):
    run = _even_run(tmp_path / "r")
    arrays = dict(np.load(run / "predictions.npz"))
    bad = dict(arrays, labels=np.where(np.arange(len(arrays["labels"])) == 0, 57, arrays["labels"]))
    np.savez(run / "predictions.npz", **bad)
    assert "predictions.npz is damaged: labels must lie in 0..3" in _refusal(run)
    np.savez(run / "predictions.npz", **dict(arrays, student_probs=np.log(arrays["student_probs"] + 1e-9)))
    assert "predictions.npz is damaged: student_probs rows must be probabilities" in _refusal(run)
    np.savez(run / "predictions.npz", **arrays)
    (run / "predictions.npz").rename(run / "elsewhere.npz")
    assert "has evidence.json but no predictions.npz" in _refusal(run)
    (run / "elsewhere.npz").rename(run / "predictions.npz")
    from skill.diagnose import diagnose_failure
    from skill.errors import InputError
    from skill.models import DiagnoseFailureRequest
    from skill.run_evidence import ANYWHERE, RUN_ROOT

    token = RUN_ROOT.set(ANYWHERE)
    try:
        with pytest.raises(InputError) as caught:
            diagnose_failure(DiagnoseFailureRequest(from_run=str(run), labels=[0, 1, 2]))
    finally:
        RUN_ROOT.reset(token)
    message = str(caught.value)
    assert "predictions.npz student_probs (read from the run)" in message and "labels you passed" in message, message


def test_over_mcp_a_run_folder_may_lie_under_the_output_root_where_recipes_run(tmp_path):
    """Recipes are exported, and so run, under --output-root; the release check reads a run there too (confined and
    read-only), by a path relative to either root or an absolute one, and still refuses a folder outside both."""
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    _generation_run(out / "recipe" / "run")
    _generation_run(tmp_path / "elsewhere")
    server = build_server(Limits(data_root=data, output_root=out))

    async def go() -> list:
        async with Client(server) as client:
            paths = ("recipe/run", str(out / "recipe" / "run"), str(tmp_path / "elsewhere"), "../elsewhere")
            return [await client.call_tool("kd_release_check", {"run_dir": path}) for path in paths]

    relative, absolute, outside, dotted = anyio.run(go)
    assert not relative.is_error and relative.structured_content["kind"] == "generation", text_of(relative)
    assert not absolute.is_error, text_of(absolute)
    assert outside.is_error and "outside the allowed root" in text_of(outside)
    assert dotted.is_error


def test_a_csv_export_with_groups_counts_features_without_the_group_column_and_points_to_release_check(tmp_path):
    from skill.export.checks import runner_net_params
    from skill.export import export_recipe
    from skill.export.request import ExportRequest

    rows = ["a,b,site,label"] + [f"{i},{i * 2},{'north' if i % 2 else 'south'},{i % 3}" for i in range(40)]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    answer = export_recipe(ExportRequest(data=str(tmp_path / "t.csv"), output_dir=str(tmp_path / "r"),
                                         teacher_hidden=[16], student_hidden=[4], engine_options={"groups": "site"}))
    teacher, student = runner_net_params("mlp", 2, [16], 3), runner_net_params("mlp", 2, [4], 3)
    assert f"sizes: teacher {teacher:,} parameters, student {student:,}" in " ".join(answer.warnings), answer.warnings
    assert any("release-check" in step for step in answer.next_steps)


def test_every_file_a_run_writes_gets_the_same_mode(tmp_path):
    """safetensors creates its file owner-only; the recipe's atomic_write gives every run file the ordinary mode."""
    pytest.importorskip("safetensors")
    import torch

    sys.path.insert(0, str(ROOT / "skill" / "export" / "templates"))
    try:
        import importlib

        weights = importlib.import_module("kd_recipe.weights")
        distributed = importlib.import_module("kd_recipe.distributed")
    finally:
        sys.path.remove(str(ROOT / "skill" / "export" / "templates"))
        for name in [m for m in sys.modules if m == "kd_recipe" or m.startswith("kd_recipe.")]:
            del sys.modules[name]
    weights.save_weights(torch.nn.Linear(2, 2), tmp_path / "student.safetensors")
    distributed.atomic_write(tmp_path / "evidence.json", lambda tmp: tmp.write_text("{}"))
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    assert len(set(modes.values())) == 1, modes


def test_text_class_names_reach_the_report(tmp_path):
    """The recipe keeps a CSV's text labels (kd_recipe/data.py), records them in evidence.json, and the diagnosis
    names the class ('2 (eel)') rather than its id alone."""
    data = _recipe_data_module()
    rows = ["a,b,fish"] + [f"{i},{i * 2},{('cod', 'dab', 'eel')[i % 3]}" for i in range(40)]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    _, test, _ = data.load_data("t.csv", tmp_path, None, None, 0.25, 0)
    assert test.class_names == ["cod", "dab", "eel"]
    labels = np.repeat(np.arange(3), 40)
    hits = np.concatenate([np.arange(40) < k for k in (39, 38, 0)])
    run = _class_run(tmp_path / "run", labels, {"teacher": _probs_for(labels, np.ones(120, bool), 3, 0.9),
                                                "student": _probs_for(labels, hits, 3, 0.8)},
                     settings={"class_names": test.class_names})
    mirage = _finding_of(_release(run), "accuracy_mirage")
    assert mirage["status"] == "detected" and "class 2 (eel)" in mirage["diagnosis"], mirage["diagnosis"]


def test_tools_reading_a_run_point_next_to_its_release_check_with_the_runs_alpha(tmp_path):
    from skill.gates import check_quality_gates
    from skill.models import QualityGatesRequest
    from skill.run_evidence import ANYWHERE, RUN_ROOT

    run = _even_run(tmp_path / "r", settings={"alpha": 0.5, "alpha_reason": "balanced"})
    token = RUN_ROOT.set(ANYWHERE)
    try:
        answer = check_quality_gates(QualityGatesRequest(from_run=str(run)))
    finally:
        RUN_ROOT.reset(token)
    clis = [s.cli for s in answer.next_steps]
    assert clis and all("release-check" in c and "--alpha 0.5" in c for c in clis) and not any("0.7" in c for c in clis)


def test_an_alpha_outside_zero_to_one_in_config_yaml_is_named_not_silently_dropped(tmp_path):
    run = _even_run(tmp_path / "export" / "run")
    (tmp_path / "export" / "config.yaml").write_text("release: {alpha: {value: 5}}\n")
    data = _release(run)
    assert "config.yaml release.alpha is 5, not a number in [0, 1]" in data["score_missing"], data["score_missing"]
