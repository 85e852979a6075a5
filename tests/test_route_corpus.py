"""The router against labelled requests written the way people write: it must get at least 97% right.

tests/data/route_corpus.yaml is the dev corpus (written separately from the router, from how users talk);
tests/data/route_corpus_extra.yaml holds the issue's own examples and further phrasings;
tests/data/route_corpus_holdout1.yaml was written by someone who had not seen the router (101 requests, 93.1% before
the routing was changed for it); tests/data/route_corpus_holdout2.yaml is a second one (134 requests, 127 right,
94.8%, before the routing was changed for it). tests/data/route_corpus_holdout3.yaml is a third, kept held out: the
routing was never changed for it (137 requests, 131 right, 95.6%, when it was added); it guards against regressions at
the accuracy it had then. Its six misses were later fixed as categories, after which holdout4 (170 requests, everyday
phrasing) scored 162/170 (95.3%) and holdout5 (170 requests aimed at the hard cases: negations, numbers either side
of a threshold, non-ML senses, everyday-word model names) 154/170 (90.6%) before the routing was changed for them;
holdout6 (160: long messages with background, terse one-liners, plain-language questions from non-experts) 141/160
(88.1%) after that round and before the routing was changed for it. An item is right
when verdict and skill match, and for out_of_scope the boundary too (bench/route_corpus.py prints the table).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from route_corpus import CORPUS, confusion_table, load_corpus, score_corpus  # noqa: E402

MIN_ACCURACY = 0.97
EXTRA = CORPUS.with_name("route_corpus_extra.yaml")
HOLDOUT1 = CORPUS.with_name("route_corpus_holdout1.yaml")  # written by someone who had not seen the router
HOLDOUT2 = CORPUS.with_name("route_corpus_holdout2.yaml")  # a second such corpus: 127/134 (94.8%) before it was used
HOLDOUT3 = CORPUS.with_name("route_corpus_holdout3.yaml")  # never tuned on: 131/137 (95.6%) when added
HOLDOUT4 = CORPUS.with_name("route_corpus_holdout4.yaml")  # 162/170 (95.3%) before it was used
HOLDOUT5 = CORPUS.with_name("route_corpus_holdout5.yaml")  # hard cases: 154/170 (90.6%) before it was used
HOLDOUT6 = CORPUS.with_name("route_corpus_holdout6.yaml")  # long, terse and plain-language: 141/160 (88.1%) before it was used
HELD_OUT_FLOOR = 0.95  # its accuracy when added, rounded down: a change that loses held-out requests fails
VERDICTS = {"in_scope", "delegate", "out_of_scope"}


@pytest.mark.parametrize("path", [CORPUS, EXTRA, HOLDOUT1, HOLDOUT2, HOLDOUT3, HOLDOUT4, HOLDOUT5, HOLDOUT6],
                         ids=["dev", "extra", "holdout1", "holdout2", "holdout3", "holdout4", "holdout5", "holdout6"])
def test_corpus_accuracy(path: Path):
    result = score_corpus(load_corpus(path))
    misses = "\n".join(f"  expected {e}, got {g}: {t}" for t, e, g in result.misses)
    assert result.accuracy >= MIN_ACCURACY, f"{result.accuracy:.3f} < {MIN_ACCURACY}\n{confusion_table(result)}\n{misses}"


def test_held_out_corpus_does_not_regress():
    result = score_corpus(load_corpus(HOLDOUT3))
    misses = "\n".join(f"  expected {e}, got {g}: {t}" for t, e, g in result.misses)
    assert result.accuracy >= HELD_OUT_FLOOR, f"{result.accuracy:.3f} < {HELD_OUT_FLOOR}\n{misses}"


def test_corpora_are_well_formed_and_large_enough():
    dev, extra, holdout1, holdout2 = (load_corpus(p) for p in (CORPUS, EXTRA, HOLDOUT1, HOLDOUT2))
    holdout = holdout1 + holdout2
    assert len(dev) >= 150 and len(holdout) >= 230
    # holdout2 was written independently and repeats five of the issue's own examples, which dev also holds
    for texts in ([item["text"] for item in dev + extra + holdout1], [item["text"] for item in holdout2]):
        assert len(texts) == len(set(texts)), "a request is listed twice"
    for item in dev + extra + holdout + load_corpus(HOLDOUT3) + load_corpus(HOLDOUT4) + load_corpus(HOLDOUT5) + load_corpus(HOLDOUT6):
        assert item["verdict"] in VERDICTS, item
        assert (item["verdict"] == "delegate") == bool(item.get("skill")), item
        if item["verdict"] == "out_of_scope":
            assert item.get("boundary"), item
    labels = {(i["verdict"], i.get("skill"), i.get("boundary")) for i in dev}
    assert len(labels) >= 12, "every sibling, every boundary and in-scope requests are represented"


def test_mixed_requests_list_the_sibling():
    """Items labelled as a mix (in scope, with `also`) list that sibling among the delegations."""
    from skill.models import RouteRequest
    from skill.route import route_request

    mixes = [i for i in load_corpus(CORPUS) + load_corpus(EXTRA) if i.get("also")]
    assert len(mixes) >= 5
    for item in mixes:
        answer = route_request(RouteRequest(request=item["text"]))
        assert set(item["also"]) <= {d.skill for d in answer.delegations}, item["text"]
