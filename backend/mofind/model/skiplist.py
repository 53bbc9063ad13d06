"""Function words and punctuation that take no part in MaxSim (a ColBERT-style skiplist).

MaxSim averages every query token's best patch, so "a", "the", "his" and commas count as much as "left" or
"waves" although no body part moves for them; in explanations they grab a patch each and crowd out the words
an animator cares about. ColBERT (Khattab & Zaharia, 2020) drops punctuation from documents for the same reason.
A model whose config names a skiplist masks these tokens out of the score (in training and at search time,
through `MotionColBERT.encode_text`, so index, search and explain all see the same tokens); a caption made only
of skipped words keeps all its tokens so it still has a score.

Directional and spatial words ("left", "up", "down", "forward", "back", "over", "around") and numbers stay: they
say where and how a body part moves.
"""

from __future__ import annotations

import string

FUNCTION_WORDS = "function-words-v1"
"""The one skiplist so far; `ModelConfig.token_skiplist` names it (None = every token scores)."""

_WORDS = (
    # articles, determiners, pronouns and possessives
    "a an the this that these those some any each every such "
    "he she it they them him her his hers its their theirs we us our you your i me my mine one's "
    "himself herself itself themselves someone's "
    # auxiliaries and copulas
    "is are was were be been being am do does did has have had having will would shall should can could may might "
    # conjunctions, connectives and non-spatial prepositions
    "and or but so then than as of to with at by for from while also just again very too "
    # time fillers
    "now there here"
)

SKIP_WORDS: frozenset[str] = frozenset(_WORDS.split())
SKIP_PUNCTUATION: frozenset[str] = frozenset(string.punctuation)


def skip_words(name: str) -> frozenset[str]:
    """The words (and punctuation) of a named skiplist."""
    if name != FUNCTION_WORDS:
        raise ValueError(f"unknown token skiplist {name!r}; known: {FUNCTION_WORDS}")
    return SKIP_WORDS | SKIP_PUNCTUATION


def skip_token_ids(tokenizer, name: str) -> list[int]:
    """Vocabulary ids of the skiplist's words that the tokenizer keeps as one token (wordpieces never match)."""
    vocab = tokenizer.get_vocab()
    return sorted({vocab[word] for word in skip_words(name) if word in vocab})
