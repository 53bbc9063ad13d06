"""The closest partial match when no take shows the whole prompt: the prompt with a misfit word or two left out.

Why: the text tower is contextual, so a descriptor the library has no motion for pulls every other word of the
prompt toward the motions the model learned that descriptor with. On a library of 40 "active" Bandai takes (no
elderly style), "an elderly person waves both hands" ranked walks first with confidence 0.13 (the elderly style
is mostly walking in training), while the same prompt without "elderly" found the two-hand waves at 0.90;
"an old man raises both hands slowly" ranked walks first at 0.14, and without "old" the two-hand raises at 0.35
(shipped model, names not fused).

So when `assess` flags a prompt, `relax` leaves out each of its content words in turn (one batched search of
all the variants), keeps the variant whose best take the calibration trusts most, and does it once more for a
prompt of six or more content words. A variant is kept when it raises the calibrated confidence by at least
MIN_GAIN and either changes the answer (its best take is not the prompt's) or is a good match itself (names
fused, "an elderly person waves both hands" already listed the waves first, at 0.11; without "elderly" they
are a good match, 0.90, which is worth saying). Leaving out a word that only moves the scores ("a person jumps
on one leg" without "person": the same run first, 0.12 -> 0.24, still no good match) is not a better answer.

The reply names the words left out and stays flagged: nothing here claims a take shows the whole prompt. Words
the model has not learned are never left out (their own message stays), so an unknown action is never swapped
for a known style: "an old man does a cartwheel" keeps 'cartwheel' and is not relaxed. Nor are spatial words
("left", "up", "forward": `vocabulary.SPATIAL_WORDS`), which say where the motion goes.

Measured (`python -m bench.eval_relax`, bench/results/relax.md): seven libraries of Bandai validation takes, one
style each, and 720 hand-written prompts of a person of another style doing one of the ten actions. With the
int8 text tower (the default), the first take had the prompt's action for 634 prompts without relaxation and
655 with it (31 fixed, 10 broken) by motion alone, and for 685 -> 699 (18 fixed, 4 broken) with names fused
(float32: 636 -> 655 and 687 -> 702). Most broken ones became a one-hand raise instead of a one-hand wave (the
model's own confusion, once the subject no longer pulls), or lost their verb ("a little kid jogs forward"
without "jogs": walks). On free-form text it is about neutral: the HumanML3D captions of the 11 held-out
captioned CMU takes (36) found their own take among 82 at rank 1 3 times without and 4 with it, and in the
first 5 11 and 10 times (11 flagged, 9 relaxed; float32: 5 / 5 and 10 / 9).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from mofind.model.vocabulary import SPATIAL_WORDS, content_words, words_of

from .assess import QualityReport, quoted

MIN_CONTENT_WORDS = 3  # words per word left out: a prompt needs three to spare one, six to spare two
MAX_LEFT_OUT = 2
MIN_GAIN = 0.1  # calibrated confidence the variant's best take must gain over the prompt's
#: Windows times variants one relaxation step may search: each variant costs about one search, so a library of
#: a million windows (~0.25 s a search on 2 cores) is relaxed only while that stays within a few searches.
#: Measured (flagged prompts, Xeon, 2 vCPUs, side by side): 100k windows, 2-3 variants, 62 -> 153 ms; 1 M windows,
#: 3 variants, 373 -> 967 ms. A prompt with a good match costs nothing more.
MAX_WINDOW_QUERIES = 4_000_000

#: `run(texts)` searches every text as the prompt was searched and returns (hits, QualityReport) per text, or
#: None when the variants cannot be searched (a memory budget): then the prompt's own results stand.
RunVariants = Callable[[list[str]], "Sequence[tuple[list, QualityReport]] | None"]


@dataclass
class Relaxed:
    """The variant of the prompt whose results replace the prompt's, and its quality report."""

    query: str
    left_out: list[str]
    hits: list
    report: QualityReport


def allowance(prompt: str) -> int:
    """How many words may be left out of `prompt`: one per MIN_CONTENT_WORDS content words, at most MAX_LEFT_OUT."""
    return min(MAX_LEFT_OUT, len(content_words(prompt)) // MIN_CONTENT_WORDS)


def spare_words(text: str, unknown: Sequence[str] = ()) -> list[str]:
    """The content words of `text` that may be left out: known to the model, not a spatial word (SPATIAL_WORDS:
    "left", "up"... say where the motion goes), and written as words of their own (the "left" of "left-hand"
    is not: leaving it out would leave "-hand")."""
    whole = {words[0] for words in map(words_of, text.split()) if len(words) == 1}
    kept = set(unknown) | SPATIAL_WORDS
    return [word for word in content_words(text) if word in whole and word not in kept]


def leave_out(text: str, word: str) -> str:
    """`text` without the whitespace-separated pieces that are exactly `word` (punctuation around it included)."""
    return " ".join(piece for piece in text.split() if words_of(piece) != [word])


def relax(prompt: str, hits: list, report: QualityReport, run: RunVariants) -> Relaxed | None:
    """The best variant of a flagged `prompt` (see the module docstring), or None when none answers better."""
    if not report.no_good_match or not hits or report.top_confidence is None:
        return None
    first = hits[0].clip_id
    current, confidence, left_out = prompt, report.top_confidence, []
    found = None
    for _ in range(allowance(prompt)):
        words = spare_words(current, report.unknown_words)
        variants = [leave_out(current, word) for word in words]
        results = run(variants) if variants else None
        if not results:
            break
        best = max(range(len(words)), key=lambda i: results[i][1].top_confidence or 0.0)  # ties: the first word
        variant_hits, variant_report = results[best]
        gained = (variant_report.top_confidence or 0.0) >= confidence + MIN_GAIN
        answers = variant_hits and (variant_hits[0].clip_id != first or not variant_report.no_good_match)
        if not gained or not answers:
            break
        current, confidence = variants[best], variant_report.top_confidence
        left_out.append(words[best])
        found = Relaxed(current, list(left_out), variant_hits, variant_report)
    return found


def variant_runner(searcher, quality, encode: Callable, *, k: int, filters, per_take: int, mode: str,
                   names_weight: float, snapshot=None, admit: Callable | None = None) -> RunVariants:
    """`run` for `relax`: the variants encoded by `encode(texts) -> [(tokens, words)]`, searched in one batch as
    the prompt was (same k, filters, mode, names weight) and assessed by `quality`. `admit(texts, tokens)`
    may refuse a batch (the server's memory budget); so does a library past MAX_WINDOW_QUERIES."""

    def run(texts: list[str]):
        windows = (snapshot or searcher.snapshot).num_windows
        if windows * len(texts) > MAX_WINDOW_QUERIES:
            return None
        tokens = [found for found, _ in encode(texts)]
        if any(len(found) == 0 for found in tokens) or (admit is not None and not admit(texts, tokens)):
            return None
        batches = searcher.search_tokens(tokens, k=k, filters=filters, per_take=per_take, mode=mode, texts=texts,
                                         names_weight=names_weight)
        return [(hits, quality.assess(searcher, text, hits, filters=filters, mode=mode, snapshot=snapshot))
                for text, hits in zip(texts, batches)]

    return run


def relaxed_report(prompt_report: QualityReport, relaxed: Relaxed) -> QualityReport:
    """The report of a relaxed search: the variant's confidences, the prompt's verdict (still no good match),
    its unknown words, and a message that says which words the results leave out."""
    prompt_confidence = prompt_report.top_confidence or 0.0
    message = (f"No take shows the whole prompt (confidence {prompt_confidence:.2f}); the results leave out "
               f"{quoted(relaxed.left_out)}. {relaxed.report.message}")
    return replace(relaxed.report, no_good_match=True, unknown_words=list(prompt_report.unknown_words),
                   known_fraction=prompt_report.known_fraction, message=message,
                   relaxed={"query": relaxed.query, "left_out": list(relaxed.left_out),
                            "prompt_confidence": round(prompt_confidence, 4)})
