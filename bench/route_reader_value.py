"""Benchmark (not a test): does the learned reader still pay for itself on the held-out corpora?

Leave one corpus out: for each held-out corpus, train the reader on every other corpus (scripts/train_route_reader.py's
fit and export, the shipped settings), then route the corpus's requests twice, by the rules alone and by the rules
with that reader, and compare them request by request. The rules have since been tuned on every corpus, so the
rules-alone column is optimistic (scored on data it has seen) while the reader never saw the corpus it scores: a gain
here is a conservative estimate of the reader's worth. Prints per corpus and pooled: both accuracies, the requests
the reader fixes and breaks, an exact McNemar p-value and a paired bootstrap 95% interval for the difference; then
the cost: the model file's size, its load time and the time per request with and without it (noisy on a shared
machine: read them as side-by-side figures from one process).
Usage: python bench/route_reader_value.py [holdout9 holdout10 ...]   (default: every route_corpus_holdout*.yaml)
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "scripts"))

from route_corpus import CORPUS, load_corpus  # noqa: E402
from train_route_reader import export, fit  # noqa: E402

from skill.models import RouteRequest  # noqa: E402
from skill.routing import route_request  # noqa: E402
from skill.routing.learned import LearnedReader, outcome_label  # noqa: E402


def _label(item: dict) -> str:
    return outcome_label(item["verdict"], item.get("skill"), item.get("boundary"))


def _routed(text: str, learned: bool | LearnedReader) -> str:
    answer = route_request(RouteRequest(request=text), learned=learned)
    return outcome_label(answer.verdict, answer.skill, answer.boundary)


def mcnemar_p(fixed: int, broken: int) -> float:
    """Exact two-sided McNemar test: under 'no difference' each discordant request is a fair coin."""
    from math import comb

    n, k = fixed + broken, min(fixed, broken)
    if n == 0:
        return 1.0
    return min(1.0, 2 * sum(comb(n, i) for i in range(k + 1)) / 2**n)


def bootstrap_interval(diffs: list[int], rounds: int = 10000, seed: int = 0) -> tuple[float, float]:
    """Paired bootstrap over requests: 95% interval of the accuracy difference (reader minus rules)."""
    rng = random.Random(seed)
    n = len(diffs)
    means = sorted(sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(rounds))
    return means[int(0.025 * rounds)], means[int(0.975 * rounds) - 1]


def main(argv: list[str]) -> None:
    corpora = sorted(CORPUS.parent.glob("route_corpus*.yaml"))
    wanted = [f"route_corpus_{a}.yaml" for a in argv] if argv else [p.name for p in corpora if "holdout" in p.name]
    sets = {p.name: load_corpus(p) for p in corpora}
    pooled: list[int] = []
    total = rules_total = reader_total = 0
    print("| held-out corpus | requests | rules alone | rules + reader | reader fixes | reader breaks | McNemar p |")
    print("|---|---|---|---|---|---|---|")
    for name in wanted:
        train = [i for n, items in sets.items() if n != name for i in items]
        texts = [i["text"] for i in train]
        model = fit(texts, [_label(i) for i in train])
        reader = LearnedReader(json.loads(json.dumps(export(model, {"held-out": train}, texts))))
        diffs, rules_right, reader_right = [], 0, 0
        for item in sets[name]:
            expected = _label(item)
            by_rules = _routed(item["text"], False) == expected
            by_reader = _routed(item["text"], reader) == expected
            diffs.append(int(by_reader) - int(by_rules))
            rules_right += by_rules
            reader_right += by_reader
        n = len(diffs)
        total, rules_total, reader_total = total + n, rules_total + rules_right, reader_total + reader_right
        pooled += diffs
        fixed, broken = diffs.count(1), diffs.count(-1)
        short = name.removeprefix("route_corpus_").removesuffix(".yaml")
        print(f"| {short} | {n} | {rules_right} ({rules_right / n:.1%}) | {reader_right} ({reader_right / n:.1%}) "
              f"| {fixed} | {broken} "
              f"| {mcnemar_p(fixed, broken):.2g} |", flush=True)
    fixed, broken = pooled.count(1), pooled.count(-1)
    low, high = bootstrap_interval(pooled)
    print(f"\npooled over {total} requests: rules alone {rules_total}/{total} ({rules_total / total:.3f}), "
          f"rules + reader {reader_total}/{total} ({reader_total / total:.3f}); reader fixes {fixed}, breaks {broken}; "
          f"difference {(reader_total - rules_total) / total:+.3f}, 95% interval [{low:+.3f}, {high:+.3f}], "
          f"McNemar p {mcnemar_p(fixed, broken):.2g}")

    texts = [i["text"] for items in sets.values() for i in items][:400]
    model_file = ROOT / "skill" / "rules" / "route_reader.json"
    start = time.perf_counter()
    shipped = LearnedReader(json.loads(model_file.read_text(encoding="utf-8")))
    load = time.perf_counter() - start
    start = time.perf_counter()
    for text in texts:
        shipped.read(text)
    alone = (time.perf_counter() - start) / len(texts) * 1000
    timings = {}
    for learned in (False, True, False, True):
        start = time.perf_counter()
        for text in texts:
            route_request(RouteRequest(request=text), learned=learned)
        timings[learned] = (time.perf_counter() - start) / len(texts) * 1000
    print(f"cost: model file {model_file.stat().st_size / 1e6:.2f} MB, parsed in {load:.2f} s; per request "
          f"{timings[False]:.1f} ms rules alone, {timings[True]:.1f} ms with the reader "
          f"(second of two passes, {len(texts)} requests); the reader alone {alone:.2f} ms")


if __name__ == "__main__":
    main(sys.argv[1:])
