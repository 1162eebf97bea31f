"""The embedded corpus: deterministic, sized as promised, and with the structure it claims."""

from __future__ import annotations

import hashlib
import itertools
import os
import subprocess
import sys
from collections import Counter

import pytest

from dmx.data.embedded import (
    FEMALE_NAMES,
    MALE_NAMES,
    MAX_SENTENCES,
    MAX_WORDS,
    MIN_SENTENCES,
    MIN_WORDS,
    TOPICS,
    corpus_stats,
    generate_documents,
    generate_labelled_documents,
    shared_words,
)

VOWELS = tuple("aeiou")
N_DOCS = 1500


@pytest.fixture(scope="module")
def labelled() -> list[tuple[str, str]]:
    return generate_labelled_documents(0, N_DOCS)


@pytest.fixture(scope="module")
def docs(labelled: list[tuple[str, str]]) -> list[str]:
    return [text for _, text in labelled]


def sentences(doc: str) -> list[list[str]]:
    out, current = [], []
    for token in doc.split():
        current.append(token)
        if token == ".":
            out.append(current)
            current = []
    assert not current, "a document ends with a full stop"
    return out


# -- determinism --------------------------------------------------------------------------


def test_same_seed_same_documents(docs: list[str]) -> None:
    assert generate_documents(0, N_DOCS) == docs


def test_same_documents_in_another_process_with_another_hash_seed() -> None:
    code = (
        "import hashlib; from dmx.data.embedded import generate_documents; "
        "print(hashlib.sha256('\\n'.join(generate_documents(7, 200)).encode()).hexdigest())"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    expected = hashlib.sha256("\n".join(generate_documents(7, 200)).encode()).hexdigest()
    assert out.stdout.strip() == expected


def test_prefix_stable() -> None:
    assert generate_documents(3, 10) == generate_documents(3, 20)[:10]
    assert generate_documents(3, 1) == generate_documents(3, 50)[:1]


def test_different_seeds_give_different_documents() -> None:
    a, b = generate_documents(0, 100), generate_documents(1, 100)
    assert sum(x != y for x, y in zip(a, b, strict=True)) >= 99


def test_documents_within_a_corpus_differ(docs: list[str]) -> None:
    assert len(set(docs)) == len(docs)


def test_edge_sizes() -> None:
    assert generate_documents(0, 0) == []
    with pytest.raises(ValueError):
        generate_documents(0, -1)


# -- size -----------------------------------------------------------------------------------


def test_document_sizes(docs: list[str]) -> None:
    words = [len(doc.split()) for doc in docs]
    counts = [len(sentences(doc)) for doc in docs]
    assert all(MIN_WORDS <= n <= MAX_WORDS for n in words)
    assert all(MIN_SENTENCES <= n <= MAX_SENTENCES for n in counts)
    assert 75 <= sum(words) / len(words) <= 105
    assert len(set(counts)) >= 4  # documents vary in length


def test_vocabulary_size(docs: list[str]) -> None:
    stats = corpus_stats(docs)
    assert stats["documents"] == N_DOCS
    assert 100_000 <= stats["words"] <= 150_000
    assert 1_500 <= stats["types"] <= 3_000


def test_corpus_stats_counts_whitespace_tokens() -> None:
    assert corpus_stats(["a b a .", "b  c"]) == {"documents": 2, "words": 6, "types": 4}
    assert corpus_stats([]) == {"documents": 0, "words": 0, "types": 0}


def test_lowercase_and_only_known_words(docs: list[str]) -> None:
    known = shared_words().union(*(topic.words for topic in TOPICS.values()))
    seen = {token for doc in docs for token in doc.split()}
    assert seen <= known
    assert all(token == token.lower() for token in seen)


def test_word_frequencies_are_zipf_like(docs: list[str]) -> None:
    counts = sorted(Counter(t for doc in docs for t in doc.split()).values(), reverse=True)
    total = sum(counts)
    assert sum(counts[:20]) / total > 0.4  # function words dominate...
    assert counts[0] > 50 * counts[299]  # ...and content words have a long tail
    assert sum(c < 20 for c in counts) > 300


# -- structure a model can learn from context -------------------------------------------------


def test_a_and_an_agree_with_the_next_word(docs: list[str]) -> None:
    for doc in docs:
        tokens = doc.split()
        for word, following in itertools.pairwise(tokens):
            if word == "a":
                assert not following.startswith(VOWELS), doc
            elif word == "an":
                assert following.startswith(VOWELS), doc


def _forms() -> tuple[set[str], set[str], set[str]]:
    """Singular-only nouns, plural-only nouns, and verb forms that are only a bare base."""
    sg, pl, base, other = set(), set(), set(), set()
    for topic in TOPICS.values():
        for noun in (*topic.nouns, *topic.roles):
            sg.add(noun.sg)
            pl.add(noun.pl)
        for verbs in (*topic.verbs.values(), *topic.intransitive.values()):
            for verb in verbs:
                base.add(verb.base)
                other.update((verb.s, verb.past, verb.ing))
    return sg - pl, pl - sg, base - other - sg - pl


def test_number_words_take_plural_nouns(docs: list[str]) -> None:
    sg_only, pl_only, _ = _forms()
    numbers = set("two three four five six seven eight nine ten eleven twelve twenty".split())
    seen = 0
    for doc in docs:
        tokens = doc.split()
        for i, word in enumerate(tokens[:-2]):
            if word in numbers:
                # the noun is the next word, or the one after an adjective
                noun = next((t for t in tokens[i + 1 : i + 3] if t in sg_only | pl_only), None)
                if noun is not None:
                    assert noun in pl_only, " ".join(tokens[i : i + 3])
                    seen += 1
    assert seen > 1000


def test_there_agrees_with_its_noun(docs: list[str]) -> None:
    for doc in docs:
        tokens = doc.split()
        for there, be, det, word in zip(tokens, tokens[1:], tokens[2:], tokens[3:], strict=False):
            if there == "there" and be in ("was", "is"):
                assert det in ("a", "an"), doc
            elif there == "there" and be in ("were", "are"):
                assert det != "the", doc
                assert det not in ("a", "an") or word in ("few", "dozen"), doc


def test_subjects_agree_with_their_verbs(docs: list[str]) -> None:
    """``he feeds`` / ``she fed``, never ``he feed``; ``he was``, never ``he were``."""
    _, _, bare = _forms()
    names = set(FEMALE_NAMES) | set(MALE_NAMES)
    for doc in docs:
        tokens = doc.split()
        for i in range(1, len(tokens) - 1):
            word, following = tokens[i], tokens[i + 1]
            singular = word in ("he", "she") or (word in names and tokens[i - 1] != "and")
            if singular:
                assert following not in bare, " ".join(tokens[i - 1 : i + 3])
                assert following not in ("are", "were"), " ".join(tokens[i - 1 : i + 3])


def test_it_and_them_agree_with_what_they_refer_to(docs: list[str]) -> None:
    """``when the goats were hungry , she fed them``."""
    seen = 0
    for doc in docs:
        for sentence in sentences(doc):
            if sentence[0] in ("when", "once", "while") and sentence[-2] in ("it", "them"):
                be = next(t for t in sentence if t in ("is", "was", "are", "were"))
                assert (be in ("is", "was")) == (sentence[-2] == "it"), " ".join(sentence)
                seen += 1
    assert seen > 100


def test_he_and_she_follow_a_character_of_that_gender(docs: list[str]) -> None:
    for doc in docs:
        tokens = doc.split()
        for pronoun, names in (("she", FEMALE_NAMES), ("he", MALE_NAMES)):
            if pronoun in tokens:
                before = tokens[: tokens.index(pronoun)]
                assert any(name in before for name in names), doc


def test_she_never_owns_his_things(docs: list[str]) -> None:
    """The possessive in a clause agrees with its subject: ``she fed her goats``."""
    boundaries = {",", ".", "because", "and", "but", "so"}
    for doc in docs:
        clause: list[str] = []
        for token in doc.split():
            if token in boundaries:
                assert not ("she" in clause and "his" in clause), " ".join(clause)
                clause = []
            else:
                clause.append(token)


def test_tense_fits_time_phrases(docs: list[str]) -> None:
    for doc in docs:
        for sentence in sentences(doc):
            if "yesterday" in sentence:
                assert not {"is", "are"} & set(sentence), " ".join(sentence)
            if "nowadays" in sentence:
                assert not {"was", "were"} & set(sentence), " ".join(sentence)


# -- topics ---------------------------------------------------------------------------------


def test_there_are_many_topics_with_disjoint_vocabularies() -> None:
    assert len(TOPICS) >= 12
    shared = shared_words()
    for a, b in itertools.combinations(TOPICS.values(), 2):
        assert not a.words & b.words, (a.name, b.name, sorted(a.words & b.words))
    for topic in TOPICS.values():
        assert not topic.words & shared, topic.name
        assert len(topic.words) >= 80, topic.name


def test_every_topic_occurs(labelled: list[tuple[str, str]]) -> None:
    counts = Counter(topic for topic, _ in labelled)
    assert set(counts) == set(TOPICS)
    assert min(counts.values()) > N_DOCS / len(TOPICS) / 2


def test_documents_stay_on_one_topic(labelled: list[tuple[str, str]]) -> None:
    """Every topic word in a document is from its own topic, and there are plenty of them."""
    shares = []
    for name, doc in labelled:
        tokens = doc.split()
        per_topic = Counter(t.name for token in tokens for t in TOPICS.values() if token in t.words)
        assert set(per_topic) == {name}, (name, per_topic)
        shares.append(per_topic[name] / len(tokens))
    assert min(shares) > 0.1
    assert sum(shares) / len(shares) > 0.25


def test_documents_reuse_their_words(docs: list[str]) -> None:
    """Focus nouns and characters recur, so earlier sentences help to predict later ones."""
    all_topic_words = set().union(*(t.words for t in TOPICS.values()))
    repeated = []
    for doc in docs:
        content = [t for t in doc.split() if t in all_topic_words]
        repeated.append(1 - len(set(content)) / len(content))
    assert sum(repeated) / len(repeated) > 0.2
