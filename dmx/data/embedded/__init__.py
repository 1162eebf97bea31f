"""The embedded corpus: English-like documents generated at run time from a seed, so the
default comparison needs no download. :mod:`~dmx.data.embedded.grammar` says why it exists
and what a model can learn from it; :mod:`~dmx.data.embedded.words` holds its word tables."""

from dmx.data.embedded.grammar import (
    FEMALE_NAMES,
    MALE_NAMES,
    MAX_SENTENCES,
    MAX_WORDS,
    MIN_SENTENCES,
    MIN_WORDS,
    TOPICS,
    Noun,
    Topic,
    Verb,
    corpus_stats,
    generate_documents,
    generate_labelled_documents,
    shared_words,
)

__all__ = [
    "FEMALE_NAMES",
    "MALE_NAMES",
    "MAX_SENTENCES",
    "MAX_WORDS",
    "MIN_SENTENCES",
    "MIN_WORDS",
    "TOPICS",
    "Noun",
    "Topic",
    "Verb",
    "corpus_stats",
    "generate_documents",
    "generate_labelled_documents",
    "shared_words",
]
