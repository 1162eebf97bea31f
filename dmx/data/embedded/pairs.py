"""Minimal pairs made from the embedded grammar's own rules, for ``eval=embedded``.

Each phenomenon is one regularity the grammar keeps in every document it writes (see
:mod:`~dmx.data.embedded.grammar`), and each pair breaks it in exactly one word: the
sentence the grammar would write, and the same sentence with that word in the form the
grammar never uses there. The sentences are built from the grammar's word lists in its
sentence shapes, drawn afresh from their own seed stream, not taken from the corpus's
documents. Like the corpus they are a pure function of the seed, the same on every machine.

The phenomena: ``a_an`` (the article before a consonant or a vowel), ``subject_verb`` (a
present-tense verb agreeing with its subject's number), ``there_was_were`` (``there was`` a
singular, ``there were`` a plural), ``number_noun`` (number words with plural nouns),
``pronoun_gender`` (``he``/``she`` and ``his``/``her`` agreeing with a named character), and
``tense_time`` (``yesterday`` with the past, ``every day`` with the present).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from dmx.data.embedded import words
from dmx.data.embedded.grammar import FEMALE_NAMES, MALE_NAMES, TOPICS, Noun, Topic
from dmx.data.minimal_pairs import Pair, Paradigm, choose

FIELD = "embedded"
PAIRS_PER_PHENOMENON = 300

_NUMBERS = tuple(words.NUMBERS.split())
_PAST_TIMES = tuple(p.strip() for p in words.PAST_TIMES.split("|"))
_PRESENT_TIMES = tuple(p.strip() for p in words.PRESENT_TIMES.split("|"))
_TOPICS = tuple(TOPICS.values())


def _pick(rng: random.Random, items: Sequence[Any]) -> Any:
    """Uniform, through ``Random.random()`` only (whose sequence Python keeps stable)."""
    return items[min(int(rng.random() * len(items)), len(items) - 1)]


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _noun_with(rng: random.Random, topic: Topic, table: dict[str, Any]) -> tuple[Noun, Any]:
    """A noun of the topic whose group ``table`` has entries, and one of those entries."""
    nouns = [n for n in topic.nouns if table.get(n.group)]
    noun = _pick(rng, nouns)
    return noun, _pick(rng, table[noun.group])


def _adjective(rng: random.Random, topic: Topic, noun: Noun) -> list[str]:
    """Half the time one of the noun's collocated adjectives, as the grammar places them."""
    adjectives = topic.adjectives.get(noun.group, ())
    return [_pick(rng, adjectives)] if adjectives and rng.random() < 0.5 else []


def _character(rng: random.Random) -> tuple[str, bool]:
    female = rng.random() < 0.5
    return _pick(rng, FEMALE_NAMES if female else MALE_NAMES), female


def _a_an(rng: random.Random, topic: Topic) -> Pair:
    noun = _pick(rng, topic.nouns)
    phrase = [*_adjective(rng, topic, noun), noun.sg]
    right = _article(phrase[0])
    wrong = "a" if right == "an" else "an"
    return _pair(["there", "was", right, *phrase, "."], 2, wrong)


def _subject_verb(rng: random.Random, topic: Topic) -> Pair:
    noun, verb = _noun_with(rng, topic, topic.intransitive)
    plural = rng.random() < 0.5
    head = [*_adjective(rng, topic, noun), noun.pl if plural else noun.sg]
    good = ["the", *head, verb.finite(past=False, plural=plural), "."]
    return _pair(good, len(good) - 2, verb.finite(past=False, plural=not plural))


def _there_was_were(rng: random.Random, topic: Topic) -> Pair:
    noun = _pick(rng, topic.nouns)
    adjective = _adjective(rng, topic, noun)
    if rng.random() < 0.5:
        good = ["there", "were", _pick(rng, _NUMBERS), *adjective, noun.pl, "."]
        return _pair(good, 1, "was")
    good = ["there", "was", _article((adjective or [noun.sg])[0]), *adjective, noun.sg, "."]
    return _pair(good, 1, "were")


def _number_noun(rng: random.Random, topic: Topic) -> Pair:
    noun, verb = _noun_with(rng, topic, topic.verbs)
    name, _ = _character(rng)
    good = [name, verb.past, _pick(rng, _NUMBERS), *_adjective(rng, topic, noun), noun.pl, "."]
    return _pair(good, len(good) - 2, noun.sg)


def _pronoun_gender(rng: random.Random, topic: Topic) -> Pair:
    name, female = _character(rng)
    role = _pick(rng, topic.roles)
    noun, verb = _noun_with(rng, topic, topic.verbs)
    intro = [name, "was", _article(role.sg), role.sg, "."]
    subject, possessive = ("she", "her") if female else ("he", "his")
    if rng.random() < 0.5:  # he / she
        good = [*intro, subject, verb.past, "the", noun.pl, "."]
        return _pair(good, len(intro), "he" if female else "she")
    good = [*intro, subject, verb.past, possessive, noun.pl, "."]  # his / her
    return _pair(good, len(intro) + 2, "his" if female else "her")


def _tense_time(rng: random.Random, topic: Topic) -> Pair:
    noun, verb = _noun_with(rng, topic, topic.verbs)
    name, _ = _character(rng)
    past = rng.random() < 0.5
    time = _pick(rng, _PAST_TIMES if past else _PRESENT_TIMES).split()
    good = [*time, ",", name, verb.finite(past=past, plural=False), "the", noun.pl, "."]
    return _pair(good, len(time) + 2, verb.finite(past=not past, plural=False))


def _pair(good: list[str], at: int, wrong: str) -> Pair:
    """The grammar's sentence, and the same with the word at ``at`` replaced."""
    bad = [*good[:at], wrong, *good[at + 1 :]]
    return Pair(" ".join(good), " ".join(bad))


PHENOMENA: dict[str, Callable[[random.Random, Topic], Pair]] = {
    "a_an": _a_an,
    "subject_verb": _subject_verb,
    "there_was_were": _there_was_were,
    "number_noun": _number_noun,
    "pronoun_gender": _pronoun_gender,
    "tense_time": _tense_time,
}


def sentences(documents: Iterable[str]) -> set[str]:
    """Every sentence of the documents, as the grammar writes them (ending `` .``)."""
    found = set()
    for doc in documents:
        found.update(part if part.endswith(".") else f"{part} ." for part in _split(doc))
    return found


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(" . ") if part.strip()]


def embedded_pairs(
    seed: int, n: int = PAIRS_PER_PHENOMENON, corpus: set[str] | None = None
) -> list[Paradigm]:
    """``n`` distinct pairs per phenomenon; a pure function of its arguments. Pair ``i``
    draws from ``Random(f"pairs:{seed}:{name}:{i}")`` (string seeds hash the same
    everywhere), so it depends on nothing but its own key; a pair with a sentence that
    ``corpus`` (the training documents' sentences) holds is left out, so no pair can be
    answered by remembering the text trained on."""
    out = []
    for name, make in PHENOMENA.items():
        pairs: dict[Pair, None] = {}
        attempt = 0
        while len(pairs) < n:
            rng = random.Random(f"pairs:{seed}:{name}:{attempt}")
            pair = make(rng, _pick(rng, _TOPICS))
            seen = corpus is not None and any(
                sentence in corpus
                for text in (pair.good, pair.bad)
                for sentence in sentences([text])
            )
            if pair.good != pair.bad and not seen:
                pairs.setdefault(pair)
            attempt += 1
            if attempt > 50 * n:
                raise RuntimeError(f"the grammar makes fewer than {n} distinct {name} pairs")
        out.append(Paradigm(uid=name, field=FIELD, phenomenon=name, pairs=tuple(pairs)))
    return out


def read_embedded(
    seed: int, paradigms: Sequence[str] | None, documents: Iterable[str] = ()
) -> list[Paradigm]:
    """The embedded pairs of the phenomena named (all when None), none of whose sentences
    occurs in ``documents``."""
    made = {p.uid: p for p in embedded_pairs(seed, corpus=sentences(documents))}
    return [made[name] for name in choose(list(made), paradigms, "eval=embedded")]
