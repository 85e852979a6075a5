"""Train the learned reader that routing consults beside its rules, from the labelled request corpora in tests/data.

Why: a lexicon grows one phrasing at a time, and on corpora written by people who never saw it the rules alone got
88-95% right; a word and character n-gram model trained on every labelled request generalises across phrasings
(leave-one-corpus-out: see --held-out). The rules still read numbers, negations and the agent's structured inputs;
the reader only overrides a text-only decision it disagrees with at high probability. Its thresholds and these
training settings are data: boundaries.yaml, learned_reader.

Writes skill/rules/route_reader.json: TF-IDF vocabularies and idf (float64), logistic-regression weights (float16, base64),
the corpora it was trained on (with hashes, so a test sees a stale model), and reference probabilities computed
from the stored weights, which skill/routing/learned.py must reproduce. Needs scikit-learn (the [distill] extra).
Usage: python scripts/train_route_reader.py [--held-out] [--extra corpus.yaml ...]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
import unicodedata
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from skill.routing.learned import outcome_label  # noqa: E402

DATA = ROOT / "tests" / "data"
OUT = ROOT / "skill" / "rules" / "route_reader.json"
CHECK_TEXTS = 40  # reference probabilities stored with the model for the runtime to reproduce


def settings() -> dict:
    """The training settings: boundaries.yaml, learned_reader.training (rules are data)."""
    from skill.rules import get_rules

    return dict(get_rules().boundaries["learned_reader"]["training"])


def corpora(extra: list[Path]) -> dict[str, list[dict]]:
    files = sorted(DATA.glob("route_corpus*.yaml")) + extra
    return {f.name: yaml.safe_load(f.read_text(encoding="utf-8")) for f in files}


def corpus_digest(items: list[dict]) -> str:
    """A corpus's fingerprint: the model records it, and a test sees a model trained on other data."""
    return hashlib.sha256(yaml.safe_dump(items, sort_keys=True).encode()).hexdigest()


def fold(text: str) -> str:
    """Compatibility forms folded, as skill/routing/learned.py does before reading."""
    return unicodedata.normalize("NFKC", text)


def fit(texts: list[str], labels: list[str]):
    from sklearn.feature_extraction.text import TfidfVectorizer  # the [distill] extra: only training needs it
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    config = settings()
    union = make_union(
        TfidfVectorizer(analyzer="word", ngram_range=tuple(config["word_ngrams"]), min_df=config["word_min_df"], sublinear_tf=True),
        TfidfVectorizer(analyzer="char_wb", ngram_range=tuple(config["char_ngrams"]), min_df=config["char_min_df"], sublinear_tf=True),
    )
    return make_pipeline(union, LogisticRegression(C=float(config["C"]), max_iter=5000)).fit([fold(t) for t in texts], labels)


def b64(array: np.ndarray, dtype: str) -> str:
    return base64.b64encode(np.ascontiguousarray(array, dtype=dtype).tobytes()).decode("ascii")


def export(model, sets: dict[str, list[dict]], texts: list[str]) -> dict:
    union, lr = model[0], model[-1]
    features = []
    for name, vec in union.transformer_list:
        terms = [str(t) for t in vec.get_feature_names_out()]
        features.append({"analyzer": vec.analyzer, "ngram_range": list(vec.ngram_range), "terms": terms, "idf": b64(vec.idf_, "<f8")})
    coef = lr.coef_.astype("<f2")
    intercept = lr.intercept_.astype("<f4")
    # reference probabilities from the weights as stored (float16 / float32), which the runtime must reproduce
    x = union.transform([fold(t) for t in texts[:CHECK_TEXTS]])
    logits = x @ coef.astype(np.float64).T + intercept.astype(np.float64)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    return {
        "kind": "tfidf word 1-2 grams + char_wb 3-5 grams, multinomial logistic regression",
        "sklearn_settings": settings(),
        "trained_on": {n: {"items": len(items), "sha256": corpus_digest(items)} for n, items in sets.items()},
        "classes": [str(c) for c in lr.classes_],
        "features": features,
        "coef": b64(coef, "<f2"),
        "intercept": [float(v) for v in intercept],
        "checks": [{"text": t, "probabilities": [round(float(p), 6) for p in row]} for t, row in zip(texts[:CHECK_TEXTS], probs)],
    }


def held_out(sets: dict[str, list[dict]], names: list[str]) -> None:
    """Leave one corpus out: train on the others, score the reader alone on it."""
    for name in names:
        train = [i for n, items in sets.items() if n != name for i in items]
        model = fit([i["text"] for i in train], [outcome_label(i["verdict"], i.get("skill"), i.get("boundary")) for i in train])
        test = sets[name]
        got = model.predict([fold(i["text"]) for i in test])
        right = sum(g == outcome_label(i["verdict"], i.get("skill"), i.get("boundary")) for g, i in zip(got, test))
        print(f"{name}: reader alone {right}/{len(test)} ({right / len(test):.3f}) when trained without it")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--held-out", action="store_true", help="print leave-one-corpus-out accuracy instead of writing the model")
    parser.add_argument("--extra", nargs="*", type=Path, default=[], help="further labelled corpora to train on")
    args = parser.parse_args()
    sets = corpora(args.extra)
    if args.held_out:
        held_out(sets, [n for n in sets if "holdout" in n])
        return
    items = [i for n in sorted(sets) for i in sets[n]]
    texts = [i["text"] for i in items]
    model = fit(texts, [outcome_label(i["verdict"], i.get("skill"), i.get("boundary")) for i in items])
    OUT.write_text(json.dumps(export(model, sets, texts), ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)}: {len(items)} requests, {sum(len(f['terms']) for f in json.loads(OUT.read_text())['features'])} features, {OUT.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
