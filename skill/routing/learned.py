"""The learned reader: a second opinion on a request, from a model trained on every labelled request in tests/data.

Rules read what they were written for (numbers, negations, the agent's structured inputs) and explain themselves;
a lexicon still misses phrasings nobody wrote down. This reader (TF-IDF over words and character n-grams, then
multinomial logistic regression; trained by scripts/train_route_reader.py with scikit-learn) generalises across
phrasings. Inference here is numpy only and reproduces scikit-learn's vectorisers, so the server stays light.
The file is data: checked against skill/rules/schemas/route_reader.schema.json when loaded.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema
import numpy as np

from skill.rules import RuleFileError, rules_dir

if TYPE_CHECKING:
    from skill.models import RouteVerdict

WORD_TOKEN = re.compile(r"(?u)\b\w\w+\b")  # scikit-learn's default token_pattern
WHITE_SPACES = re.compile(r"\s\s+")


def outcome_label(verdict: str, skill: str | None, boundary: str | None) -> str:
    """One class name per routing outcome, as the corpora and the reader name them: 'in_scope', 'delegate:<skill>',
    'out_of_scope:<boundary>'."""
    if verdict == "delegate":
        return f"delegate:{skill}"
    if verdict == "out_of_scope":
        return f"out_of_scope:{boundary}"
    return verdict


def outcomes(rules: Mapping[str, Any]) -> dict[str, tuple[RouteVerdict, Mapping[str, Any] | None]]:
    """Every label the rules can answer, with its verdict and sibling or boundary rule (None for in scope)."""
    found: dict[str, tuple[RouteVerdict, Mapping[str, Any] | None]] = {"in_scope": ("in_scope", None)}
    for entry in (*rules["siblings"], *rules["boundaries"]):
        verdict: RouteVerdict = "delegate" if entry.get("skill") else "out_of_scope"
        found[outcome_label(verdict, entry.get("skill"), entry.get("id"))] = (verdict, entry)
    return found


@dataclass(frozen=True)
class Reading:
    label: str  # "in_scope", "delegate:<skill>" or "out_of_scope:<boundary>"
    probability: float
    runner_up: str
    runner_up_probability: float


def _word_ngrams(text: str, low: int, high: int) -> list[str]:
    tokens = WORD_TOKEN.findall(text)
    grams = list(tokens) if low == 1 else []
    for n in range(max(low, 2), min(high, len(tokens)) + 1):
        grams += [" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return grams


def _char_wb_ngrams(text: str, low: int, high: int) -> list[str]:
    grams: list[str] = []
    for word in WHITE_SPACES.sub(" ", text).split():
        padded = f" {word} "
        for n in range(low, high + 1):
            offset = 0
            grams.append(padded[offset : offset + n])
            while offset + n < len(padded):
                offset += 1
                grams.append(padded[offset : offset + n])
            if offset == 0:  # a word shorter than n is counted once, as scikit-learn does
                break
    return grams


ANALYZERS = {"word": _word_ngrams, "char_wb": _char_wb_ngrams}


def _finite(values: np.ndarray, name: str) -> np.ndarray:
    """A NaN would compare false against every threshold and let the reader override anything."""
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name} holds values that are not finite numbers")
    return values


class LearnedReader:
    """Vectorises a request like the trained TfidfVectorizers and applies the stored weights."""

    def __init__(self, model: dict[str, Any]):
        try:
            self._build(model)
        except (
            ValueError,
            TypeError,
            KeyError,
            binascii.Error,
        ) as exc:  # a schema-valid file can still hold bad arrays
            raise RuleFileError(f"route_reader.json: not a valid learned reader: {exc}") from exc

    def _build(self, model: dict[str, Any]) -> None:
        self.classes: list[str] = model["classes"]
        self.blocks = []
        offset = 0
        for feature in model["features"]:
            terms = feature["terms"]
            low, high = feature["ngram_range"]
            if low > high:
                raise ValueError(f"{feature['analyzer']} ngram_range {low} > {high}")
            idf = _finite(np.frombuffer(base64.b64decode(feature["idf"], validate=True), "<f8"), "idf")
            if len(idf) != len(terms):
                raise ValueError(f"{feature['analyzer']} has {len(terms)} terms but {len(idf)} idf values")
            index = {t: i for i, t in enumerate(terms)}
            self.blocks.append((ANALYZERS[feature["analyzer"]], (low, high), index, idf, offset))
            offset += len(terms)
        coef = _finite(np.frombuffer(base64.b64decode(model["coef"], validate=True), "<f2").astype(np.float64), "coef")
        if coef.size != len(self.classes) * offset:
            raise ValueError(f"coef holds {coef.size} weights, expected {len(self.classes)} x {offset}")
        self.coef = coef.reshape(len(self.classes), offset)
        self.intercept = _finite(np.asarray(model["intercept"], dtype=np.float64), "intercept")
        if self.intercept.shape != (len(self.classes),):
            raise ValueError(f"intercept holds {self.intercept.size} values for {len(self.classes)} classes")

    def probabilities(self, text: str) -> np.ndarray:
        lowered = unicodedata.normalize("NFKC", text).lower()  # as trained: full-width and ligature forms folded
        logits = self.intercept.copy()
        for analyze, (low, high), index, idf, offset in self.blocks:
            counts: dict[int, int] = {}
            for gram in analyze(lowered, low, high):
                j = index.get(gram)
                if j is not None:
                    counts[j] = counts.get(j, 0) + 1
            if not counts:
                continue
            cols = np.fromiter(counts, dtype=np.int64)
            values = np.array([(1.0 + math.log(counts[j])) * idf[j] for j in counts])  # sublinear tf x idf
            values /= np.linalg.norm(values)  # l2, per vectoriser, as the FeatureUnion of two vectorisers does
            logits += self.coef[:, offset + cols] @ values
        logits -= logits.max()
        probs = np.exp(logits)
        return probs / probs.sum()

    def read(self, text: str) -> Reading:
        probs = self.probabilities(text)
        first, second = np.argsort(-probs)[:2]
        return Reading(self.classes[first], float(probs[first]), self.classes[second], float(probs[second]))


def load_model_file(path: Path) -> dict[str, Any]:
    """The model file, checked against its schema; a clear error naming the file otherwise."""
    schema = json.loads((rules_dir() / "schemas" / "route_reader.schema.json").read_text(encoding="utf-8"))
    try:
        model = json.loads(path.read_text(encoding="utf-8"))
        jsonschema.validate(model, schema)
    except (OSError, ValueError, jsonschema.ValidationError) as exc:
        raise RuleFileError(f"{path.name}: not a valid learned reader: {str(exc).splitlines()[0]}") from exc
    return model


@lru_cache(maxsize=2)
def _load(name: str) -> LearnedReader | RuleFileError:
    try:
        return LearnedReader(load_model_file(rules_dir() / name))
    except RuleFileError as exc:
        return exc  # remembered: a broken file is reported on every call, not re-read on every call


def get_reader(name: str) -> LearnedReader:
    """The reader from skill/rules/<name>, loaded once (about 0.2 s) on the first routed request."""
    loaded = _load(name)
    if isinstance(loaded, RuleFileError):
        raise loaded
    return loaded


def consult(text: str, rules: Mapping[str, Any], reader: LearnedReader | None = None) -> Reading:
    """The shipped reader's (or the given one's) reading of a request. Raises RuleFileError when the model is
    missing or broken, or names labels the rules do not define: checked before any reading is believed."""
    reader = reader or get_reader(rules["learned_reader"]["file"])
    unknown = sorted(set(reader.classes) - set(outcomes(rules)))
    if unknown:
        raise RuleFileError(f"route_reader.json: labels {unknown} are not siblings or boundaries in boundaries.yaml")
    return reader.read(text)
