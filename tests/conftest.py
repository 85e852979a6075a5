"""Shared fixtures (the repository root, a helper to run the CLI as a real subprocess) and the `e2e` marker.

`pytest -m "not e2e"` is the fast subset a developer runs between edits (about a minute on 2 cores); CI runs
everything. End to end means: installs a package or the plugin, drives a third-party client, spawns worker
processes or torchrun, or trains through the MCP server; those modules are listed here once, so a reader finds the
split in one place, and every test marked `slow` is end to end too."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

E2E_MODULES = {
    "test_client_wiring",  # the Claude Code CLI and a plugin install with only the system Python
    "test_install_paths",  # the launcher provisioning its own environment
    "test_packaging",  # builds and pip-installs the wheel
    "test_mcp_inspector",  # the MCP Inspector CLI from npm
    "test_export_torchrun",  # torchrun with two processes
    "test_distill_sandbox",  # hostile files against the real worker process
    "test_mcp_distill",  # quick distills through the MCP server and its worker
    "test_mcp_fuzz",  # schema-driven fuzzing of every tool
}

# single tests that train for seconds, spawn the server or a CLI subprocess, or replay a whole corpus: end to end too
# (each took 1.5 s or more of the fast subset's three minutes)
E2E_TESTS = {
    "test_distill_runner::test_time_budget_cuts_student_epochs_refuses_the_impossible_or_stops_a_long_run",
    "test_distill_runner::test_cli_distill_json_and_bad_input",
    "test_distill_runner::test_each_method_and_topology_runs",
    "test_freeze_server::test_advice_cancel_and_sigterm_are_served_while_the_slowest_requests_run",
    "test_route_corpus::test_held_out_corpora_with_a_reader_that_never_saw_them",
    "test_route_corpus::test_corpus_accuracy",
    "test_route_corpus::test_the_learned_reader_was_trained_on_the_corpora_and_settings_as_they_are",
    "test_quick_distill_honesty::test_default_budget_finishes_three_seeds_and_restores_threads",
    "test_skill_docs::test_installs_with_the_skills_installer",
    "test_distill_experiment_design::test_a_weak_teacher_gives_inconclusive_with_what_to_change",
    "test_distill_experiment_design::test_a_noisy_probe_that_cut_trials_is_undone_after_the_scratch_students",
    "test_distill_experiment_design::test_a_strong_given_teacher_with_few_labels_and_unlabelled_rows_is_found_as_a_gain",
    "test_route::test_route_work_per_request_stays_small",
    "test_freeze_attacks::test_patterns_on_their_own_pieces_at_the_size_limit",
    "test_mcp_server::test_stdio_subprocess_end_to_end",
    "test_distill_jobs::test_every_failed_run_is_one_job_error_with_no_worker_and_no_staging_folder_left",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark end-to-end tests (see the module docstring)."""
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1]
        if module in E2E_MODULES or f"{module}::{item.originalname}" in E2E_TESTS or item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture
def run_cli():
    """Run `python -m skill ...`; returns (exit code, parsed JSON or None, stderr)."""

    def _run(*args: str, stdin: str | None = None, cwd: Path | None = None, timeout: float = 120):
        proc = subprocess.run(
            [sys.executable, "-m", "skill", *args], input=stdin, capture_output=True, text=True, cwd=cwd or ROOT, timeout=timeout
        )
        try:
            data = json.loads(proc.stdout) if proc.stdout.strip() else None
        except ValueError:
            data = None
        return proc.returncode, data, proc.stderr

    return _run

