"""The CLI as a user runs it: a real subprocess, JSON on stdout, exit 2 with one clear line on bad input."""

from __future__ import annotations

import json
import sys

import pytest

from skill.commands import COMMANDS

VALID = {
    "recommend": ["--task-type", "classification", "--task-similarity", "0.9", "--compression-ratio", "16"],
    "alpha": ["--deployment-environment", "mobile"],
    "score": ["--alpha", "0.7", "--teacher-size", "800", "--teacher-accuracy", "0.95", "--student-size", "50", "--student-accuracy", "0.912"],
    "diagnose": ["--per-class-accuracy", '{"a": 0.97, "rare": 0.5}', "--class-support", '{"a": 900, "rare": 12}'],
    "gates": ["--alpha", "0.7", "--alpha-reason", "phone app"],
    "route": ["--request", "shrink my model for a phone"],
    "release-check": ["tests/data/generation_run"],  # a run folder in the TRL recipe's generation_evidence.json shape
}
BAD = {
    "recommend": (["--task-type", "poetry"], "task_type"),
    "alpha": (["--deployment-environment", "moon"], "deployment_environment"),
    "score": (["--alpha", "0.7", "--teacher-size", "800", "--teacher-accuracy", "95", "--student-size", "5", "--student-accuracy", "0.9"], "teacher_accuracy"),
    "diagnose": (["--labels", "[0, 1]", "--student-probs", "[[0.5, 0.5]]"], "student_probs"),
    "gates": (["--temperature", "-3"], "temperature"),
    "route": (["--request", ""], "request"),
    "release-check": (["tests/data/no_such_run"], "run_dir"),
}


def test_every_command_is_covered():
    assert set(VALID) == set(COMMANDS) == set(BAD)


@pytest.mark.parametrize("command", sorted(VALID))
def test_command_answers_json(run_cli, command):
    code, data, _ = run_cli(command, *VALID[command])
    assert code == 0
    assert {"rule_trace", "warnings", "missing_inputs", "next_steps", "delegations", "references"} <= set(data)


@pytest.mark.parametrize("command", sorted(BAD))
def test_bad_input_exits_2_with_one_line(run_cli, command):
    args, field = BAD[command]
    code, data, err = run_cli(command, *args)
    assert code == 2 and data is None
    lines = err.strip().splitlines()
    assert len(lines) == 1 and field in lines[0] and "Traceback" not in err


def test_values_from_cli_match_the_library(run_cli):
    _, data, _ = run_cli("score", *VALID["score"])
    assert data["score"] == pytest.approx(0.05575)
    _, data, _ = run_cli("recommend", *VALID["recommend"])
    assert data["method"]["id"] == "response" and data["method"]["hyperparameters"]["temperature_range"] == [3, 4]


def test_json_request_from_stdin_and_text_format(run_cli):
    code, _, _ = run_cli("alpha", "--json", "-", stdin=json.dumps({"deployment_environment": "server", "application_domain": "medical"}))
    assert code == 0
    import subprocess

    proc = subprocess.run([sys.executable, "-m", "skill", "alpha", "--deployment-environment", "mobile", "--format", "text"], capture_output=True, text=True)
    assert proc.returncode == 0 and "Alpha:    0.7 (range 0.6 to 0.8)" in proc.stdout


def test_unknown_field_in_json_is_refused(run_cli):
    code, _, err = run_cli("alpha", "--json", '{"deployment": "mobile"}')
    assert code == 2 and "deployment" in err and "Extra inputs are not permitted" in err


def test_true_is_not_an_accuracy_inside_a_per_class_map(run_cli):
    """Outside review: {"a": true} in per_class_accuracy passed as 1.0 and produced a 'detected' accuracy mirage."""
    request = '{"per_class_accuracy": {"a": true, "b": 0.5}, "class_support": {"a": 900, "b": 12}}'
    code, out, err = run_cli("diagnose", "--json", request)
    assert code == 2 and not out and err.strip().endswith("per_class_accuracy.a: true/false is not a number; give a number"), err
    code, out, err = run_cli("diagnose", "--json", '{"per_class_accuracy": {"a": 0.9, "b": 0.5}, "class_support": {"a": true, "b": 12}}')
    assert code == 2 and "class_support.a: true/false is not a number" in err, err


def test_true_is_not_a_number_on_the_cli_either(run_cli):
    # the MCP server refused it while the CLI took `true` as alpha 1.0 (pydantic's lax mode)
    request = '{"alpha": true, "teacher_size": 800, "teacher_accuracy": 0.95, "student_size": 50, "student_accuracy": 0.9}'
    code, out, err = run_cli("score", "--json", request)
    assert code == 2 and not out and err.strip().endswith("alpha: true/false is not a number; give a number")
    assert len(err.strip().splitlines()) == 1


def test_bad_json_is_refused(run_cli):
    code, _, err = run_cli("alpha", "--json", "{not json")
    assert code == 2 and "--json" in err


def test_advice_never_imports_torch():
    import subprocess

    code = "import sys; from skill.cli import main; main(['alpha', '--deployment-environment', 'edge']); assert 'torch' not in sys.modules, 'torch imported'"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_a_reader_that_stops_early_gets_no_traceback():
    """`kd-skill ... | head -1`: the pipe closes before the answer is written; the command ends quietly."""
    import subprocess
    from pathlib import Path

    proc = subprocess.Popen([sys.executable, "-m", "skill", "diagnose", "--per-class-accuracy", '{"a": 0.9, "b": 0.5}'],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=Path(__file__).resolve().parents[1])
    proc.stdout.close()  # closed before the interpreter has even started: every write hits a broken pipe
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 1 and "Traceback" not in err and "BrokenPipeError" not in err, err


def test_a_check_across_fields_reads_as_one_plain_line(run_cli):
    code, data, err = run_cli("recommend", "--task-type", "generation", "--teacher-params", "5", "--student-params", "50")
    assert code == 2 and data is None and len(err.strip().splitlines()) == 1
    assert "student_params (50) is larger than teacher_params (5)" in err
    assert "Value error" not in err and "(request)" not in err and '"task_type"' not in err  # no pydantic prefix, no echo of the request
