"""kd_export_recipe / kd-skill export without training: the folder's contents, settings carried from a report,
clear one-line errors at export time, the engine registry, and path confinement through the real MCP client."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import anyio
import numpy as np
import pytest
import yaml
from mcp import Client

from mcp_server.server import build_server
from skill.distill.jobs import Limits
from skill.errors import InputError
from skill.export import ENGINES, engine_module, export_recipe
from skill.export.checks import check_import_path, runner_net_params
from skill.export.request import ExportRequest
from tests.mcp_helpers import text_of

RECIPE_FILES = {"train.py", "config.yaml", "README.md", "kd_vendor/__init__.py", "kd_vendor/losses.py", "kd_vendor/nets.py",
                *(f"kd_recipe/{p.name}" for p in (Path(__file__).resolve().parents[1] / "skill" / "export" / "templates" / "kd_recipe").glob("*.py"))}


@pytest.fixture(scope="module")
def digits_npz(tmp_path_factory) -> Path:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    path = tmp_path_factory.mktemp("data") / "digits.npz"
    np.savez(path, X_train=(X[:1344] / 16).astype(np.float32), y_train=y[:1344], X_test=(X[1344:] / 16).astype(np.float32), y_test=y[1344:])
    return path


def _report(tmp_path: Path, **extra) -> Path:
    """A quick-distill report as the runner writes it, trimmed to what matters, plus whatever `extra` adds."""
    report = {
        "dataset": "digits", "num_classes": 10, "teacher": {"accuracy": 0.97}, "scratch": {"accuracy": 0.95}, "distilled": {"accuracy": 0.96},
        "gain_points": 1.0, "compression_ratio": 25.1, "complete": True,
        "trials": [{"temperature": 2.0, "kd_loss_weight": 0.5, "val_accuracy": 0.95, "epochs": 80},
                   {"temperature": 6.0, "kd_loss_weight": 0.5, "val_accuracy": 0.97, "epochs": 90}],
        "settings": {"method": "relation", "method_reason": "fixed by the caller", "topology": "teacher_student", "arch": "mlp",
                     "teacher_hidden": [128, 64], "student_hidden": [20], "temperature": 6.0, "kd_loss_weight": 0.5, "temperature_tuned": True,
                     "epochs": 90, "epochs_run_distilled": 90, "seed": 3},
        **extra,
    }
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report))
    return path


def _config(folder: Path) -> dict:
    return yaml.safe_load((Path(folder) / "config.yaml").read_text())


def test_export_writes_a_self_contained_folder(tmp_path, digits_npz):
    out = tmp_path / "recipe"
    response = export_recipe(ExportRequest(data=str(digits_npz), output_dir=str(out)))
    assert set(response.files) == RECIPE_FILES
    assert {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} == RECIPE_FILES | {".kd-export"}
    config = _config(out)
    leaves = [leaf for section in config.values() if isinstance(section, dict) for leaf in section.values()]
    assert leaves and all(set(leaf) >= {"value", "why"} and leaf["why"] for leaf in leaves)  # every setting says why
    assert config["distill"]["temperature"]["value"] == 4.0 and "method.yaml" in config["distill"]["temperature"]["evidence"]
    assert config["data"]["num_classes"]["value"] == 10 and config["data"]["source"]["value"] == str(digits_npz)
    readme = (out / "README.md").read_text()
    for command in ("python", "--nproc_per_node 1", "--nproc_per_node N", "--nnodes", "--rdzv_endpoint"):
        assert command in readme
    from skill.distill import losses

    assert (out / "kd_vendor" / "losses.py").read_text() == Path(losses.__file__).read_text()  # the vendored copy is this package's
    compile((out / "train.py").read_text(), "train.py", "exec")


@pytest.mark.parametrize("noise", [
    {"comparison": {"verdict": "no_gain", "statement": "within the noise", "interval": [-1.0, 2.0]}},  # this runner's report
    {"seed_summary": {"gain_beats_noise": False, "statement": "within the noise", "per_seed": [{"seed": 0}]}},  # an earlier runner's
])
def test_report_settings_and_evidence_are_carried_over(tmp_path, digits_npz, noise):
    # a report may carry fields this exporter has never seen: they are ignored
    report = _report(tmp_path, **noise, new_field=[1, 2])
    response = export_recipe(ExportRequest(from_report=str(report), data=str(digits_npz), output_dir=str(tmp_path / "r"), kd_loss_weight=0.7))
    settings = {s.name: s for s in response.settings}
    assert settings["distill.temperature"].value == 6.0 and "T=6.0 w=0.5 -> val 0.970" in settings["distill.temperature"].evidence
    assert settings["distill.kd_loss_weight"].value == 0.7 and settings["distill.kd_loss_weight"].evidence == "set in the export request"
    assert settings["distill.method"].value == "relation" and settings["student.hidden"].value == [20]
    assert settings["teacher.hidden"].value == [128, 64] and settings["train.epochs"].value == 90 and settings["train.seed"].value == 3
    assert "gain +1.00 points" in settings["evidence.quick_distill"].value
    assert any("did not show a gain" in w for w in response.warnings)


def test_report_dataset_digits_is_materialised(tmp_path):
    response = export_recipe(ExportRequest(from_report=str(_report(tmp_path)), output_dir=str(tmp_path / "r")))
    assert "data/digits.npz" in response.files
    with np.load(tmp_path / "r" / "data" / "digits.npz") as arrays:
        assert arrays["X_train"].shape[1] == 64 and len(arrays["y_train"]) + len(arrays["y_test"]) == 1797


@pytest.mark.parametrize(
    "changes, field, words",
    [
        ({"data": "missing.npz"}, "data", "does not exist"),
        ({"data": "table.parquet"}, "data", "accepted are"),
        ({"teacher": "no_such_package_xyz.models:make"}, "teacher", "not on the Python path"),
        ({"student": "json:no_such_factory"}, "student", "defines no top-level 'no_such_factory'"),
        ({"teacher": "not an import path"}, "teacher", "neither 'mlp', 'cnn' nor an import path"),
        ({"student_hidden": [400, 400]}, "student_hidden", "more than the teacher's"),
        ({"student": "cnn", "data": "DATA_CSV"}, "student", "square"),
        ({"teacher_weights": "weights.pt"}, "teacher_weights", "safetensors"),
        ({"method": "feature", "teacher_cache": True}, "teacher_cache", "features every step"),
        ({"engine_options": {"x": 1}}, "engine_options", "no engine options"),
        ({"global_batch_size": 30, "accumulation_steps": 4}, "accumulation_steps", "does not divide"),
        ({"from_report": "REPORT_ENSEMBLE"}, "from_report", "not exported"),
    ],
)
def test_bad_input_is_one_clear_line_at_export_time(tmp_path, digits_npz, changes, field, words):
    csv = tmp_path / "t.csv"
    csv.write_text("a,b,c,label\n1,2,3,x\n4,5,6,y\n")
    substitutes = {"DATA_CSV": str(csv), "REPORT_ENSEMBLE": str(_report(tmp_path, settings={"topology": "ensemble"}))}
    args = {"data": str(digits_npz), "output_dir": str(tmp_path / "out"), **{k: substitutes.get(v, v) if isinstance(v, str) else v for k, v in changes.items()}}
    with pytest.raises(InputError) as err:
        export_recipe(ExportRequest(**args))
    assert err.value.field == field and words in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "out").exists()  # nothing written on bad input


def test_unknown_engine_lists_the_valid_ones():
    with pytest.raises(InputError, match="valid engines: torchrun"):
        engine_module("deepspeed-magic")
    with pytest.raises(ValueError, match="torchrun"):
        ExportRequest(engine="deepspeed-magic")
    assert set(ENGINES) >= {"torchrun"}


def test_output_dir_holding_other_files_is_refused_but_an_earlier_export_is_rewritten(tmp_path, digits_npz):
    other = tmp_path / "theirs"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match="output_dir"):
        export_recipe(ExportRequest(data=str(digits_npz), output_dir=str(other)))
    assert (other / "notes.txt").read_text() == "keep me"
    first = export_recipe(ExportRequest(data=str(digits_npz), output_dir=str(tmp_path / "mine"), temperature=3))
    second = export_recipe(ExportRequest(data=str(digits_npz), output_dir=str(tmp_path / "mine"), temperature=3))
    assert first == second  # idempotent


def test_import_paths_are_checked_without_running_them(tmp_path):
    module = tmp_path / "booby_trap.py"
    module.write_text("raise SystemExit('executed!')\n\ndef make():\n    pass\n")
    assert check_import_path("booby_trap:make", "teacher", [str(tmp_path)]) == module  # found by parsing, never imported
    assert "booby_trap" not in sys.modules
    (tmp_path / "star.py").write_text("from os.path import *\n")
    check_import_path("star:join", "teacher", [str(tmp_path)])  # a star import cannot be resolved statically: accepted


@pytest.mark.parametrize("kind, hidden", [("mlp", [7]), ("mlp", [30, 12, 5]), ("cnn", [4, 6]), ("cnn", [3])])
def test_parameter_arithmetic_matches_the_runner_nets(kind, hidden):
    from skill.distill import nets

    model = nets.build(kind, 64, hidden, 10, 8 if kind == "cnn" else None)
    assert runner_net_params(kind, 64, hidden, 10) == nets.count_params(model)


def test_cli_export_and_its_errors(run_cli, tmp_path, digits_npz):
    code, data, _ = run_cli("export", "--data", str(digits_npz), "--output-dir", str(tmp_path / "cli"), "--temperature", "5", "--epochs", "7")
    assert code == 0 and data["output_dir"] == str(tmp_path / "cli") and "train.py" in data["files"]
    assert _config(tmp_path / "cli")["train"]["epochs"]["value"] == 7
    code, data, err = run_cli("export", "--data", str(tmp_path / "nope.npz"), "--output-dir", str(tmp_path / "x"))
    assert code == 2 and data is None and len(err.strip().splitlines()) == 1 and "data:" in err and "Traceback" not in err


def test_mcp_tool_confines_paths_and_writes_under_the_output_root(tmp_path, digits_npz):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "d.npz").write_bytes(digits_npz.read_bytes())
    server = build_server(Limits(data_root=tmp_path / "data", output_root=tmp_path / "out"))
    attacks = [
        ({"data": "../d.npz"}, "data"),
        ({"data": str(digits_npz)}, "data"),  # absolute, outside the data root
        ({"data": "d.npz", "output_dir": "/tmp/kd_escape"}, "output_dir"),
        ({"data": "d.npz", "output_dir": "../escape"}, "output_dir"),
        ({"data": "d.npz", "from_report": "/etc/passwd"}, "from_report"),
        ({"data": "d.npz", "teacher_weights": "../../w.safetensors"}, "teacher_weights"),
    ]

    async def go():
        async with Client(server) as client:
            tool = {t.name: t for t in (await client.list_tools()).tools}["kd_export_recipe"]
            good = await client.call_tool("kd_export_recipe", {"data": "d.npz", "output_dir": "demo", "temperature": 4})
            bad = [await client.call_tool("kd_export_recipe", args) for args, _ in attacks]
            return tool, good, bad

    tool, good, bad = anyio.run(go)
    a = tool.annotations
    assert (a.read_only_hint, a.destructive_hint, a.idempotent_hint, a.open_world_hint) == (False, False, True, False)
    assert not good.is_error and good.structured_content["output_dir"] == str((tmp_path / "out" / "demo").resolve())
    assert (tmp_path / "out" / "demo" / "train.py").is_file()
    for (args, field), result in zip(attacks, bad):
        assert result.is_error and field in text_of(result), (args, text_of(result))
    assert not Path("/tmp/kd_escape").exists() and not (tmp_path / "escape").exists()


def test_a_hostile_report_falls_back_to_defaults(tmp_path, digits_npz):
    """A report is user input: values of the wrong type or range are ignored, not trusted."""
    report = _report(tmp_path, trials=[{"temperature": "hot", "val_accuracy": "high"}, "junk"],
                     settings={"temperature": 0, "kd_loss_weight": 7, "teacher_hidden": "abc", "student_hidden": [True], "epochs": -3,
                               "seed": 1.5, "method": "telepathy", "arch": "transformer"})
    response = export_recipe(ExportRequest(from_report=str(report), data=str(digits_npz), output_dir=str(tmp_path / "r")))
    settings = {s.name: s.value for s in response.settings}
    assert settings["distill.temperature"] == 4.0 and settings["distill.kd_loss_weight"] == 0.9 and settings["distill.method"] == "response"
    assert settings["teacher.hidden"] == [256, 256] and settings["student.hidden"] == [32] and settings["train.epochs"] == 120
    assert settings["teacher.model"] == "mlp" and settings["train.seed"] == 0


def test_a_planted_symlink_stops_a_rewrite(tmp_path, digits_npz):
    out = tmp_path / "mine"
    export_recipe(ExportRequest(data=str(digits_npz), output_dir=str(out)))
    (out / "train.py").unlink()
    (out / "train.py").symlink_to(tmp_path / "victim.py")
    with pytest.raises(InputError, match="symbolic link"):
        export_recipe(ExportRequest(data=str(digits_npz), output_dir=str(out)))
    assert not (tmp_path / "victim.py").exists()


def test_the_report_fields_read_exist_in_the_runners_report_model():
    """The exporter reads a report by field name: each name it reads must still exist in DistillReport."""
    from skill.distill.report import DistillReport, Settings, Trial

    assert {"dataset", "trials", "settings", "gain_points", "compression_ratio", "complete", "comparison", "teacher", "scratch", "distilled"} <= set(DistillReport.model_fields)
    assert {"method", "method_reason", "topology", "arch", "teacher_hidden", "student_hidden", "temperature", "kd_loss_weight",
            "temperature_tuned", "epochs", "epochs_run_distilled", "seed", "stop_reason"} <= set(Settings.model_fields)
    assert {"temperature", "kd_loss_weight", "val_accuracy"} <= set(Trial.model_fields)


def test_factories_defined_in_blocks_or_lazy_modules_are_found(tmp_path):
    # a factory defined under `try: import torch` / `if torch:` is bound at module level; a module that replaces
    # itself in sys.modules (transformers' lazy __init__) decides its names at run time: neither may be refused
    (tmp_path / "guarded.py").write_text("try:\n    import torch\nexcept ImportError:\n    torch = None\nif torch is not None:\n"
                                         "    def make_teacher():\n        return torch.nn.Linear(64, 10)\n")
    (tmp_path / "lazy.py").write_text("import sys\nsys.modules[__name__] = object()\n")
    assert check_import_path("guarded:make_teacher", "teacher", [str(tmp_path)]).name == "guarded.py"
    assert check_import_path("lazy:AutoModel", "teacher", [str(tmp_path)]).name == "lazy.py"
    with pytest.raises(InputError, match="defines no top-level 'elsewhere'"):
        check_import_path("guarded:elsewhere", "teacher", [str(tmp_path)])


def test_an_empty_output_dir_is_refused_not_taken_as_the_default(tmp_path, digits_npz):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="output_dir"):
        ExportRequest(data=str(digits_npz), output_dir="")


def test_report_evidence_reads_as_a_person_would_and_a_loss_is_flagged(tmp_path, digits_npz):
    report = _report(tmp_path, gain_points=-5.78, compression_ratio=25.111373707533236)
    response = export_recipe(ExportRequest(from_report=str(report), data=str(digits_npz), output_dir=str(tmp_path / "r")))
    settings = {s.name: s for s in response.settings}
    assert "(25.1x smaller than its teacher)" in settings["student.hidden"].evidence
    assert "ran all 90 epochs" in settings["train.epochs"].evidence and "early" not in settings["train.epochs"].evidence
    assert any("5.78 points BELOW the from-scratch student" in w for w in response.warnings)


def test_hostile_export_inputs_get_one_line_errors_and_the_server_stays_small(tmp_path):
    """Outside review: export checks run in the server, so a label bomb must be refused from its header, a deep
    report must not escape as 'Error executing tool', and no message may show where the server's Python lives."""
    import tracemalloc

    from tests import hostile_inputs as hostile

    data = tmp_path / "data"
    data.mkdir()
    hostile.label_bomb_npz(data / "bomb.npz", (272 << 20) // 8)  # 272 MiB of labels in a ~300 KiB file
    hostile.many_members_npz(data / "many.npz", 200)
    (data / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (data / "ids.csv").write_text("a,label\n" + "".join(f"1,id{i}\n" for i in range(100_002)))
    (data / "bom.csv").write_bytes(b"\xef\xbb\xbf" + b"f0,f1,label\n" + b"".join(b"%d,%d,%d\n" % (i, i % 3, i % 2) for i in range(40)))
    forged = json.dumps({"w": {"dtype": "F32", "shape": [2**31, 2**31], "data_offsets": [0, 16]}}).encode()
    (data / "forged.safetensors").write_bytes(len(forged).to_bytes(8, "little") + forged + bytes(16))
    (data / "huge_header.safetensors").write_bytes((2**40).to_bytes(8, "little") + b"{}")
    from safetensors.numpy import save_file

    save_file({"w": np.zeros((2, 3), np.float32)}, str(data / "good.safetensors"))
    server = build_server(Limits(data_root=data, output_root=tmp_path / "out"))
    attacks = [
        ({"data": "digits", "teacher_weights": "forged.safetensors"}, "teacher_weights: forged.safetensors: tensor 'w' does not match its bytes"),
        ({"data": "digits", "teacher_weights": "huge_header.safetensors"}, "teacher_weights: huge_header.safetensors is not a safetensors file"),
        ({"data": "bomb.npz"}, "data: bomb.npz: y_train declares"),
        ({"data": "ids.csv"}, "label_column: 'label' of ids.csv has more than 100,000 distinct values"),
        ({"data": "many.npz"}, "data: many.npz has more than 64 entries"),
        ({"data": "digits", "from_report": "deep.json"}, "from_report: deep.json nests too deeply"),
        ({"data": "digits", "teacher": "json.decoder:no_such_factory"}, "teacher: module 'json.decoder' (decoder.py) defines no top-level 'no_such_factory'"),  # os itself star-imports posix: its names are unknowable
    ]

    async def go():
        async with Client(server) as client:
            bom = await client.call_tool("kd_export_recipe", {"data": "bom.csv", "label_column": "f0", "output_dir": "bom"})
            good = await client.call_tool("kd_export_recipe", {"data": "digits", "teacher_weights": "good.safetensors", "output_dir": "good"})
            tracemalloc.start()  # after the imports the good calls needed
            bad = [await client.call_tool("kd_export_recipe", {**args, "output_dir": f"e{i}"}) for i, (args, _) in enumerate(attacks)]
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            return bad, bom, good, peak

    bad, bom, good, peak = anyio.run(go)
    for (args, words), result in zip(attacks, bad):
        text = text_of(result)
        assert result.is_error and f"Invalid arguments: {words}" in text and len(text.splitlines()) == 1, (args, text)
        assert "/" not in text.split(words, 1)[1], text  # no path of the server's machine
    assert not bom.is_error, text_of(bom)  # the BOM is not part of the first column's name
    assert not good.is_error, text_of(good)
    assert peak < 64 * 2**20, f"the export checks held {peak / 2**20:.0f} MiB"


def _swapper(name: Path, kept: Path, target: Path):
    """A process (its own core) that keeps swapping `name` between what it is and a symlink to `target`."""
    import subprocess

    swap = ("import os, sys, time\nrace, kept, target = sys.argv[1:]\nwhile True:\n try:\n"
            "  if os.path.islink(race): os.unlink(race); os.rename(kept, race)\n"
            "  else: os.rename(race, kept); os.symlink(target, race)\n except OSError: pass\n time.sleep(0.0005)\n")
    return subprocess.Popen([sys.executable, "-c", swap, str(name), str(kept), str(target)])


def test_a_folder_swapped_for_a_symlink_during_export_cannot_redirect_it(tmp_path):
    """Outside review: the tool checked output_dir by name and then wrote by path; swapping a folder for a link
    to outside the root put a whole recipe there within a few calls. Now it writes through descriptors."""
    out, outside = tmp_path / "out", tmp_path / "outside"
    (out / "race").mkdir(parents=True)
    outside.mkdir()
    server = build_server(Limits(data_root=tmp_path, output_root=out))

    async def go():
        async with Client(server) as client:
            results = []
            for i in range(40):
                results.append(await client.call_tool("kd_export_recipe", {"data": "digits", "output_dir": f"race/e{i}"}))
                if any(outside.iterdir()):
                    break
            return results

    swapper = _swapper(out / "race", out / "kept", outside)
    try:
        results = anyio.run(go)
    finally:
        swapper.kill()
        swapper.wait()
    assert list(outside.iterdir()) == [], f"the recipe landed outside the output root after {len(results)} calls"
    for result in results:
        assert not result.is_error or "output_dir" in text_of(result), text_of(result)


def test_a_data_file_swapped_for_a_symlink_cannot_be_read_outside_the_root(tmp_path):
    """Outside review: data was checked by name and read by path, so a swapped link made the export read a file
    outside the data root and print its first line (the 'columns' of a bad label_column)."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "d.csv").write_text("a,label\n" + "".join(f"{i},{i % 2}\n" for i in range(20)))
    (tmp_path / "secret.csv").write_text("SECRET_TOKEN,x\n1,2\n3,4\n")
    server = build_server(Limits(data_root=data, output_root=tmp_path / "out"))

    async def go():
        async with Client(server) as client:
            return [text_of(await client.call_tool("kd_export_recipe", {"data": "d.csv", "label_column": "nope", "output_dir": f"e{i}"}))
                    for i in range(60)]

    swapper = _swapper(data / "d.csv", data / "kept.csv", tmp_path / "secret.csv")
    try:
        texts = anyio.run(go)
    finally:
        swapper.kill()
        swapper.wait()
    assert not [t for t in texts if "SECRET" in t], "the export read a file outside the data root"
    assert any("label_column" in t for t in texts)
