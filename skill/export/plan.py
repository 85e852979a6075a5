"""Turn a request (and an optional quick-distill report) into settings, each with its value, why and evidence.

Shared by every engine: a value given in the request wins, then the report's tuned value (with the numbers
that chose it), then the default from the rule files or the quick distill's own defaults (with that reason).
The report is read tolerantly: only the fields used here are looked up, anything else in it is ignored.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from skill.errors import InputError
from skill.export.opened import is_file, local_path, open_binary, size_of
from skill.export.request import ExportRequest, ExportSetting

MAX_REPORT_BYTES = 20 * 1024 * 1024
REPORT_TEXT_CHARS = 200  # a report's free text as shown in an answer or a generated file
KNOWN_DATASETS = ("digits",)  # the runner's bundled datasets; any other dataset the runner reports is a file name
_DATASET_FILE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_. -]{0,99}\.(?:npz|csv)")


def report_text(value: Any, cap: int = REPORT_TEXT_CHARS) -> str | None:
    """A report's string as inert data: one line (line breaks, control and invisible format characters become
    spaces), at most `cap` characters, in double quotes inside a markdown code span. A report is user input; its text
    lands in the README an agent or operator follows, so it must never start a section or read as an instruction of
    ours (issue 22), and nothing in it may render: an unclosed '<!--' hid the rest of a README, an image fetched a URL.
    In a code span CommonMark reads everything literally; the span's own delimiter (a backtick) becomes a quote."""
    if not isinstance(value, str):
        return None
    flat = "".join(" " if unicodedata.category(ch)[0] in "CZ" else ch for ch in value[: cap * 4])
    flat = " ".join(flat.split())
    if not flat:
        return None
    if len(flat) > cap:
        flat = flat[: cap - 1] + "\u2026"
    return "`" + json.dumps(flat.replace("`", "'"), ensure_ascii=False) + "`"


def report_dataset(value: Any) -> str | None:
    """The report's dataset when it is one the runner names: a bundled one ('digits') or a plain .npz/.csv file name."""
    if isinstance(value, str) and (value in KNOWN_DATASETS or _DATASET_FILE.fullmatch(value)):
        return value
    return None


def read_report(path: str) -> dict[str, Any]:
    """A quick-distill report.json as a plain dict; it must at least carry a `settings` object."""
    file = local_path(path)
    if not is_file(file):
        raise InputError("from_report", f"{path!r} is not a file; give the report.json a quick distill wrote")
    if size_of(file) > MAX_REPORT_BYTES:
        raise InputError(
            "from_report", f"{file.name} is larger than {MAX_REPORT_BYTES // 2**20} MiB; not a quick-distill report"
        )
    try:
        with open_binary(file) as handle:
            data = json.loads(handle.read(MAX_REPORT_BYTES + 1).decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError("from_report", f"{file.name} is not valid JSON: {exc}") from exc
    except RecursionError:
        raise InputError("from_report", f"{file.name} nests too deeply; not a quick-distill report") from None
    if not isinstance(data, dict) or not isinstance(data.get("settings"), dict):
        raise InputError("from_report", f"{file.name} has no 'settings' object; is it a quick-distill report.json?")
    return data


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


@dataclass
class Plan:
    """The settings in order, keyed 'section.name', plus the report (if any) and warnings for the person."""

    request: ExportRequest
    report: dict[str, Any] | None
    settings: dict[str, ExportSetting] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def value(self, key: str) -> Any:
        return self.settings[key].value

    def add(
        self,
        key: str,
        why: str,
        *,
        given: Any = None,
        reported: Any = None,
        report_evidence: str | None = None,
        default: Any = None,
        default_evidence: str | None = None,
    ) -> Any:
        """Request, then report, then default; the evidence says which one and the numbers behind it."""
        evidence: str | None
        if given is not None:
            value, evidence = given, "set in the export request"
        elif reported is not None:
            value, evidence = reported, report_evidence or "carried over from the quick-distill report"
        else:
            value, evidence = default, default_evidence
        self.settings[key] = ExportSetting(name=key, value=value, why=why, evidence=evidence)
        return value

    # ---- what the report says, in words -----------------------------------------------------

    def report_settings(self) -> dict[str, Any]:
        """The report's settings, each kept only when it has the type and range the runner writes (a report is user
        input)."""
        raw = dict(self.report.get("settings") or {}) if self.report else {}
        kept = {k: raw[k] for k in ("method", "topology", "arch") if isinstance(raw.get(k), str) and len(raw[k]) <= 100}
        kept.update(
            {k: report_text(raw[k]) for k in ("method_reason", "stop_reason") if report_text(raw.get(k))}
        )  # free text: quoted, one line
        for key, low, high in (("temperature", 0.5, 50), ("kd_loss_weight", 0, 1)):
            value = _num(raw.get(key))
            if value is not None and low <= value <= high:
                kept[key] = value
        for key, low in (("epochs", 1), ("epochs_run_distilled", 0), ("seed", 0)):
            if isinstance(raw.get(key), int) and not isinstance(raw.get(key), bool) and low <= raw[key] <= 2**31 - 1:
                kept[key] = raw[key]
        for key in ("teacher_hidden", "student_hidden"):
            value = raw.get(key)
            if (
                isinstance(value, list)
                and 1 <= len(value) <= 6
                and all(isinstance(h, int) and not isinstance(h, bool) and 1 <= h <= 65536 for h in value)
            ):
                kept[key] = value
        if isinstance(raw.get("temperature_tuned"), bool):
            kept["temperature_tuned"] = raw["temperature_tuned"]
        return kept

    def tuning_evidence(self) -> str | None:
        """'tuned on the validation split: T=2 w=0.9 -> 0.962; T=4 ...' from the report's trials."""
        trials = [t for t in (self.report or {}).get("trials") or [] if isinstance(t, dict)]
        shown = [
            f"T={t['temperature']} w={t['kd_loss_weight']} -> val {t['val_accuracy']:.3f}"
            for t in trials[:8]
            if all(_num(t.get(k)) is not None for k in ("temperature", "kd_loss_weight", "val_accuracy"))
        ]
        if not shown:
            return None
        tuned = self.report_settings().get("temperature_tuned")
        return (
            "tuned on the quick distill's validation split: " if tuned else "the quick distill's fixed setting: "
        ) + "; ".join(shown)

    def outcome_evidence(self) -> str | None:
        """The headline numbers of the quick distill: accuracies, the gain and whether it beat the noise."""
        r = self.report or {}
        parts = []
        for name in ("teacher", "scratch", "distilled"):
            acc = _num((r.get(name) or {}).get("accuracy")) if isinstance(r.get(name), dict) else None
            if acc is not None:
                parts.append(f"{name} {acc:.4f}")
        gain = _num(r.get("gain_points"))
        if gain is not None:
            parts.append(f"gain {gain:+.2f} points")
        seeds = _comparison(r)
        statement = report_text(seeds.get("statement")) if isinstance(seeds, dict) else None
        if statement:
            parts.append(f"the report says {statement}")
        dataset = report_dataset(r.get("dataset")) or "a dataset the report does not name as a known one"
        return f"quick distill on {dataset}: " + ", ".join(parts) if parts else None

    def report_warnings(self) -> list[str]:
        """What a person must know before spending real compute on the reported settings."""
        r = self.report or {}
        notes = []
        seeds = _comparison(r)
        no_gain = isinstance(seeds, dict) and (
            seeds.get("gain_beats_noise") is False or seeds.get("verdict") in ("no_gain", "loss")
        )
        one_seed = isinstance(seeds, dict) and seeds.get("verdict") == "no_verdict"
        if no_gain:
            notes.append(
                "the quick distill did not show a gain beyond the noise "
                f"({report_text(seeds.get('statement')) or 'see the report'}); the full run may not pay off"
            )
        elif one_seed or (not isinstance(seeds, dict) and _num(r.get("gain_points")) is not None):
            notes.append("the quick distill ran one seed: its gain is not yet evidence (run seeds >= 3)")
        gain = _num(r.get("gain_points"))
        if (
            gain is not None
            and gain < 0
            and not (isinstance(seeds, dict) and seeds.get("gain_beats_noise") is not None)
        ):
            notes.append(
                f"the quick distill's distilled student scored {-gain:.2f} points BELOW the from-scratch student; "
                "check the teacher, T and the epochs (or run seeds >= 3) before spending full-scale compute on these "
                "settings"
            )
        if r.get("complete") is False:
            reason = (
                report_text((r.get("settings") or {}).get("stop_reason"))
                if isinstance(r.get("settings"), dict)
                else None
            )
            notes.append(
                f"the quick distill stopped early ({reason or 'incomplete'}); its tuned values rest on a partial run"
            )
        return notes


def _comparison(report: dict[str, Any]) -> Any:
    """The seeds-and-noise verdict: `comparison` in current reports, `seed_summary` in reports of earlier versions."""
    return report.get("comparison") if report.get("comparison") is not None else report.get("seed_summary")
