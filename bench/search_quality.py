"""How well free-text questions find their measure, and how fast.

    python bench/search_quality.py [--questions bench/questions.yaml] [--verbose]

Prints top-1 and top-3 accuracy over the question set, the no-answer precision (of the messages
answered without a measure, how many were off-topic; "tell me more" replies to messages that
name nothing specific count as answered without a measure), how many off-topic messages got
no measure, small-talk handling, and the latency of answering one question against all content
(p50, p99).

The messages of the set being measured are left out of the content's labelled messages
(content/messages/*.txt, seeded from the development sets) before the index is built: every set is
measured as questions the assistant has not learnt from.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from content.loader import Content, load_content  # noqa: E402
from handlers.search import TARGETS, QuestionIndex  # noqa: E402

NO_MEASURE = ("none", "vague")


def expected_of(item: dict) -> tuple[str, set[int]]:
    expect = item["expect"]
    if expect in ("none", "smalltalk"):
        return expect, set()
    if expect == "targets":
        return "doc", {TARGETS}
    return "doc", set(expect)


def unlearnt(content: Content, questions: set[str]) -> Content:
    """The content without `questions` among its labelled messages."""
    messages = content.messages.model_copy(
        update={
            "about_the_plan": [q for q in content.messages.about_the_plan if q not in questions],
            "not_about_the_plan": [q for q in content.messages.not_about_the_plan if q not in questions],
        }
    )
    return replace(content, messages=messages)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--questions", type=Path, default=ROOT / "bench" / "questions.yaml")
    parser.add_argument("--content", type=Path, default=ROOT / "content")
    parser.add_argument("--verbose", action="store_true", help="print every miss")
    parser.add_argument("--no-bigrams", action="store_true", help="without character bigrams")
    parser.add_argument("--no-pinyin", action="store_true", help="without pinyin bigrams")
    args = parser.parse_args()

    items = yaml.safe_load(args.questions.read_text(encoding="utf-8"))
    content = unlearnt(load_content(args.content), {" ".join(item["q"].split()) for item in items})
    started = time.perf_counter()
    index = QuestionIndex(content, bigrams=not args.no_bigrams, pinyin=not args.no_pinyin)
    build_ms = (time.perf_counter() - started) * 1000

    counts: Counter[str] = Counter()
    by_lang: Counter[str] = Counter()
    by_lang_ok: Counter[str] = Counter()
    latencies = []
    for item in items:
        kind, wanted = expected_of(item)
        t0 = time.perf_counter()
        answer = index.answer(item["q"])
        latencies.append((time.perf_counter() - t0) * 1000)
        got = [h.doc for h in answer.hits]
        if answer.kind == "targets":
            got = [TARGETS]
        if kind == "doc":
            counts["questions"] += 1
            by_lang[item["lang"]] += 1
            top1 = bool(got) and got[0] in wanted
            top3 = bool(wanted & set(got[:3]))
            counts["top1"] += top1
            counts["top3"] += top3
            by_lang_ok[item["lang"]] += top1
            if args.verbose and not top1:
                print(
                    f"MISS {item['q']!r} want {sorted(wanted)} got {answer.kind} {got} "
                    f"{[(h.doc, round(h.score, 1), h.matched) for h in answer.hits]}"
                )
        elif kind == "none":
            counts["offtopic"] += 1
            counts["offtopic_ok"] += answer.kind in NO_MEASURE
            if args.verbose and answer.kind not in NO_MEASURE:
                print(f"FALSE ANSWER {item['q']!r}: {answer.kind} {got}")
        else:
            counts["smalltalk"] += 1
            counts["smalltalk_ok"] += answer.kind == "smalltalk"
            counts["smalltalk_measure"] += answer.kind in ("measure", "list", "targets")
            if args.verbose and answer.kind != "smalltalk":
                print(f"SMALLTALK MISSED {item['q']!r}: {answer.kind} {got}")
        counts["no_answer_given"] += answer.kind in NO_MEASURE
        counts["no_answer_right"] += answer.kind in NO_MEASURE and kind == "none"
        counts["vague"] += answer.kind == "vague"

    for _ in range(5):  # steadier latency figures
        for item in items:
            t0 = time.perf_counter()
            index.answer(item["q"])
            latencies.append((time.perf_counter() - t0) * 1000)
    latencies.sort()
    q = counts["questions"]
    print(
        f"questions: {len(items)} ({q} about a measure or the targets, {counts['offtopic']} off-topic, "
        f"{counts['smalltalk']} small talk)"
    )
    print(f"top-1 accuracy: {counts['top1'] / q:.1%}")
    print(f"top-3 accuracy: {counts['top3'] / q:.1%}")
    for lang in sorted(by_lang):
        print(f"  top-1 {lang}: {by_lang_ok[lang] / by_lang[lang]:.1%} of {by_lang[lang]}")
    given = counts["no_answer_given"]
    print(
        f"no-answer precision: {counts['no_answer_right'] / given:.1%} ({counts['no_answer_right']}/{given})"
        if given
        else "no-answer precision: n/a (never said no answer)"
    )
    print(f"off-topic never answered with a measure: {counts['offtopic_ok']}/{counts['offtopic']}")
    print(f"asked to say more (named nothing specific): {counts['vague']}")
    print(
        f"small talk recognised: {counts['smalltalk_ok']}/{counts['smalltalk']} "
        f"(answered with a measure: {counts['smalltalk_measure']})"
    )
    print(
        f"latency per question: p50 {statistics.median(latencies):.2f} ms, "
        f"p99 {latencies[int(len(latencies) * 0.99) - 1]:.2f} ms ({len(latencies)} answers)"
    )
    print(f"index build: {build_ms:.0f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
