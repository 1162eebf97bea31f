"""The embedded corpus: English-like documents generated at run time, from a seed.

Why it exists. dmx asks whether a fresh (dynamic) mask each epoch beats a fixed (static)
mask per sequence. That question only has an interesting answer when the same *finite* data
is reused for many epochs: a static mask then shows the model the same (input, target) pairs
again and again, which it can memorise, while a dynamic mask keeps asking new questions
about the same text. So the default dataset must be

* finite and small: a few thousand short documents, reused for tens of epochs by a tiny
  encoder on a laptop CPU in about a minute;
* learnable from context: a masked word should be predictable from its neighbours far
  better than from word frequency alone, so that a held-out split measures real learning;
* not trivially predictable: many content words are free choices among near-equals, so a
  perfect score is impossible and memorising the training masks is a tempting shortcut;
* available everywhere: no download, no network, no third-party package, byte-identical
  on every machine.

What it is. Each document has one topic (farming, cooking, sailing, ... 16 in all, see
:data:`TOPICS`) and 4-10 sentences (60-120 whitespace tokens, punctuation included) drawn
from a small probabilistic grammar. The regularities a model can learn from context:

* agreement: ``a``/``an`` before consonant/vowel letters, singular and plural nouns with
  matching verbs (``the goat grazes`` / ``the goats graze``, ``there was`` / ``there were``),
  number words with plural nouns (``seven ripe plums``), ``it``/``them`` referring back;
* collocations: adjectives belong to noun groups (``ripe`` goes with fruit, ``rusty`` with
  tools), verbs take objects of the right kind (one ``milks`` animals, ``harvests`` crops),
  places take their own prepositions, and fixed idioms and topic sayings recur word for word;
* topic consistency: each topic owns its nouns, verbs, adjectives and places (no word is
  owned by two topics), a document uses only its own topic's words besides the shared ones
  (function words, names, numbers, a few general verbs and adjectives), and it dwells on a
  handful of "focus" nouns, so earlier sentences predict later ones;
* characters: named people are introduced (``nora was a busy baker who lived near the
  pantry .``) and then referred to by name or by ``he``/``she`` and ``his``/``her``,
  consistently with that character;
* tense: a document is told mostly in one tense, and a sentence never mixes tenses; some
  time phrases occur only with the past (``yesterday``) or the present (``every day``).

Word choices follow Zipf-like weights (the first word of each list is the most common), so
function words are frequent and content words have a long tail: of some 2,100 possible
word types, about 2,000 occur in 1,500 documents (130,000 words).

Determinism. Each document draws from its own ``random.Random(f"{seed}:{index}")`` (string
seeds are hashed with SHA-512, the same on every platform and process) and only through
``Random.random()``, whose sequence for a given seed Python promises to keep across
versions; the samplers here are built on it instead of on ``choice``/``choices``/``sample``,
whose algorithms may change. No set is iterated, and dicts only in insertion order. Hence
``generate_documents(s, n)`` is the same everywhere, and a prefix of any longer corpus from
the same seed.
"""

from __future__ import annotations

import bisect
import operator
import random
from collections.abc import Sequence
from dataclasses import dataclass

from dmx.data.embedded import words

MIN_SENTENCES, MAX_SENTENCES = 4, 10
MIN_WORDS, MAX_WORDS = 60, 120  # whitespace tokens, punctuation included

# How steeply word choices fall off with their rank in a list (weight 1 / rank**exponent).
_ZIPF = 0.8


# --------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------


def generate_documents(seed: int, n_docs: int) -> list[str]:
    """``n_docs`` documents of lowercase, space-separated tokens; a pure function of its inputs.

    Document ``i`` depends only on ``(seed, i)``, so a corpus is a prefix of any longer one
    from the same seed, and a document's topic is drawn from the same stream (uniformly).
    """
    return [text for _, text in generate_labelled_documents(seed, n_docs)]


def generate_labelled_documents(seed: int, n_docs: int) -> list[tuple[str, str]]:
    """Like :func:`generate_documents`, with each document's topic: ``[(topic, text), ...]``."""
    seed = operator.index(seed)
    n_docs = operator.index(n_docs)
    if n_docs < 0:
        raise ValueError(f"n_docs must be >= 0, got {n_docs}")
    return [_generate_document(seed, i) for i in range(n_docs)]


def corpus_stats(docs: list[str]) -> dict[str, int]:
    """Size of a corpus: documents, words (whitespace tokens) and distinct word types."""
    types: set[str] = set()
    words = 0
    for doc in docs:
        tokens = doc.split()
        words += len(tokens)
        types.update(tokens)
    return {"documents": len(docs), "words": words, "types": len(types)}


def shared_words() -> frozenset[str]:
    """Every word the grammar may use outside the topics' own vocabularies.

    Function words, names, numbers, general adjectives and verbs, time phrases, idioms and
    the topics' fixed sayings: anything in a document that is not in ``TOPICS[t].words``.
    """
    return _SHARED_WORDS


# --------------------------------------------------------------------------------------
# Word forms
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Noun:
    """A countable noun; ``group`` ties it to its collocated adjectives and verbs."""

    sg: str
    pl: str
    group: str


@dataclass(frozen=True)
class Verb:
    """The four forms the grammar uses: ``feed feeds fed feeding``."""

    base: str
    s: str
    past: str
    ing: str

    def finite(self, past: bool, plural: bool) -> str:
        """The simple-tense form agreeing with its subject."""
        if past:
            return self.past
        return self.base if plural else self.s


@dataclass(frozen=True, eq=False)
class Topic:
    """One topic's own vocabulary; no word here belongs to another topic.

    ``adjectives``, ``verbs`` and ``intransitive`` are keyed by noun group: the adjectives
    that collocate with that group, the verbs that take it as object, and the verbs it
    can be the subject of. ``places`` pairs a place noun with the prepositions it takes.
    ``sayings`` are fixed sentences, repeated word for word; their words are shared ones or
    this topic's own.
    """

    name: str
    roles: tuple[Noun, ...]
    nouns: tuple[Noun, ...]
    adjectives: dict[str, tuple[str, ...]]
    verbs: dict[str, tuple[Verb, ...]]
    intransitive: dict[str, tuple[Verb, ...]]
    places: tuple[tuple[str, tuple[str, ...]], ...]
    sayings: tuple[str, ...]
    words: frozenset[str]


_VOWELS = frozenset("aeiou")
_SIBILANT_ENDINGS = ("s", "x", "z", "ch", "sh")


def _plural(sg: str) -> str:
    if sg.endswith(_SIBILANT_ENDINGS):
        return sg + "es"
    if sg.endswith("y") and sg[-2] not in _VOWELS:
        return sg[:-1] + "ies"
    return sg + "s"


def _noun(spec: str, group: str) -> Noun:
    """``"goat"`` or, for an irregular plural, ``"goose:geese"``."""
    sg, _, pl = spec.partition(":")
    return Noun(sg, pl or _plural(sg), group)


def _verb(spec: str) -> Verb:
    """``"feed/fed"``: base, then an irregular past and ``-ing`` form where needed.

    Regular forms follow the spelling rules (``carries carried``, ``bakes baked baking``);
    a doubled consonant in the given past (``chop/chopped``) is reused for ``-ing``.
    """
    base, *rest = spec.split("/")
    if base.endswith((*_SIBILANT_ENDINGS, "o")):
        s = base + "es"
    elif base.endswith("y") and base[-2] not in _VOWELS:
        s = base[:-1] + "ies"
    else:
        s = base + "s"
    if rest:
        past = rest[0]
    elif base.endswith("e"):
        past = base + "d"
    elif base.endswith("y") and base[-2] not in _VOWELS:
        past = base[:-1] + "ied"
    else:
        past = base + "ed"
    if len(rest) > 1:
        ing = rest[1]
    elif past.endswith("ed") and len(past) > len(base) + 2 and past[-3] == past[-4]:
        ing = past[:-2] + "ing"  # chopped -> chopping
    elif base.endswith("ie"):
        ing = base[:-2] + "ying"
    elif base.endswith("e") and not base.endswith(("ee", "ye", "oe")):
        ing = base[:-1] + "ing"
    else:
        ing = base + "ing"
    return Verb(base, s, past, ing)


# --------------------------------------------------------------------------------------
# Sampling: only ever through Random.random(), whose sequence Python keeps stable
# --------------------------------------------------------------------------------------


def _uniform(rng: random.Random, items: Sequence):
    return items[min(int(rng.random() * len(items)), len(items) - 1)]


class _Zipf:
    """A fixed list sampled with weight ``1 / rank**_ZIPF``: the first item is commonest."""

    __slots__ = ("items", "cum")

    def __init__(self, items: Sequence) -> None:
        if not items:
            raise ValueError("cannot sample from an empty list")
        self.items = tuple(items)
        total, cum = 0.0, []
        for rank in range(1, len(self.items) + 1):
            total += rank**-_ZIPF
            cum.append(total)
        self.cum = tuple(cum)

    def pick(self, rng: random.Random):
        i = bisect.bisect_right(self.cum, rng.random() * self.cum[-1])
        return self.items[min(i, len(self.items) - 1)]


def _article(word: str) -> str:
    """``a`` or ``an`` by the next word's first letter (the word lists avoid ``hour``)."""
    return "an" if word[0] in _VOWELS else "a"


# --------------------------------------------------------------------------------------
# The grammar
# --------------------------------------------------------------------------------------


@dataclass
class _Character:
    name: str
    female: bool
    role: Noun

    @property
    def pronouns(self) -> tuple[str, str, str]:
        """Subject, object and possessive pronoun."""
        return ("she", "her", "her") if self.female else ("he", "him", "his")


@dataclass
class _Subject:
    tokens: list[str]
    plural: bool
    possessive: str | None  # "his" / "her" / "their" for a later object, None if unknown
    characters: tuple[_Character, ...] = ()  # the named characters it mentions


class _Document:
    """The state of one document being written: topic, tense, characters, focus nouns."""

    def __init__(self, rng: random.Random, topic: Topic) -> None:
        self.rng = rng
        self.topic = topic
        self.grammar = _GRAMMARS[topic.name]
        self.past = rng.random() < 0.6
        # One to three characters with distinct names, each with a role from the topic.
        n_chars = 1 + (rng.random() < 0.55) + (rng.random() < 0.25)
        self.characters: list[_Character] = []
        names: list[str] = []
        while len(self.characters) < n_chars:
            female = rng.random() < 0.5
            name = (_FEMALE_NAMES if female else _MALE_NAMES).pick(rng)
            if name not in names:
                names.append(name)
                self.characters.append(_Character(name, female, self.grammar.roles.pick(rng)))
        self.introduced: list[_Character] = []
        self.last: _Character | None = None  # whom "he"/"she" refers to
        # The nouns the document keeps coming back to.
        self.focus: list[Noun] = []
        n_focus = 3 + int(rng.random() * 4)
        for _ in range(40):
            noun = self.grammar.nouns.pick(rng)
            if noun not in self.focus:
                self.focus.append(noun)
                if len(self.focus) == n_focus:
                    break
        self.said = False  # at most one saying per document

    # -- state that a rejected sentence must not change ---------------------------------

    def snapshot(self) -> tuple:
        return (list(self.introduced), self.last, self.said)

    def restore(self, state: tuple) -> None:
        self.introduced, self.last, self.said = list(state[0]), state[1], state[2]

    # -- words ----------------------------------------------------------------------------

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def noun(self, groups: Sequence[str] | None = None) -> Noun:
        """A thing, most often one of the document's focus nouns."""
        rng = self.rng
        pool = self.focus if groups is None else [n for n in self.focus if n.group in groups]
        if pool and rng.random() < 0.75:
            return _uniform(rng, pool)
        if groups is None:
            return self.grammar.nouns.pick(rng)
        return self.grammar.group_nouns[_uniform(rng, groups)].pick(rng)

    def adjective(self, noun: Noun) -> str | None:
        """A collocated adjective (usually), a general one (sometimes), or none (half)."""
        r = self.rng.random()
        if r < 0.45:
            return self.grammar.adjectives[noun.group].pick(self.rng)
        if r < 0.55:
            return _GENERAL_ADJECTIVES.pick(self.rng)
        return None

    def verb_for(self, noun: Noun) -> Verb:
        """A verb that takes this noun as object: mostly the group's own verbs."""
        if self.rng.random() < 0.18:
            return _GENERAL_VERBS.pick(self.rng)
        return self.grammar.verbs[noun.group].pick(self.rng)

    def be(self, plural: bool, past: bool) -> str:
        if past:
            return "were" if plural else "was"
        return "are" if plural else "is"

    def time(self, past: bool) -> list[str]:
        """A time phrase; some only fit one tense (``yesterday`` / ``every day``)."""
        if self.rng.random() < 0.5:
            return _TIMES.pick(self.rng)
        return (_PAST_TIMES if past else _PRESENT_TIMES).pick(self.rng)

    def place(self, possessive: str | None = None) -> list[str]:
        """A prepositional phrase: ``in the barn``, ``across the wide meadow``, ``in her barn``."""
        rng = self.rng
        place, preps = self.grammar.places.pick(rng)
        det = possessive if possessive and rng.random() < 0.25 else "the"
        adj = [_PLACE_ADJECTIVES.pick(rng)] if rng.random() < 0.15 else []
        return [_uniform(rng, preps), det, *adj, place]

    # -- noun phrases ---------------------------------------------------------------------

    def np(self, noun: Noun, plural: bool, possessive: str | None = None) -> list[str]:
        """A noun phrase whose determiner agrees with its number.

        Singular: ``the`` / ``a`` / ``an`` / a possessive. Plural: ``the``, a number word,
        a quantifier, a possessive, or nothing.
        """
        rng = self.rng
        adj = self.adjective(noun)
        head = [adj, noun.pl if plural else noun.sg] if adj else [noun.pl if plural else noun.sg]
        r = rng.random()
        if possessive and r < 0.2:
            return [possessive, *head]
        if not plural:
            return ["the", *head] if r < 0.6 else [_article(head[0]), *head]
        if r < 0.5:
            return ["the", *head]
        if r < 0.75:
            return [_NUMBERS.pick(rng), *head]
        if r < 0.9:
            return [*_QUANTIFIERS.pick(rng), *head]
        return head

    def thing(self, groups: Sequence[str] | None = None) -> tuple[Noun, bool, list[str]]:
        noun = self.noun(groups)
        plural = self.chance(0.5)
        return noun, plural, self.np(noun, plural)

    def role_np(self) -> _Subject:
        """People named by their trade: ``the farmer``, ``an old shepherd``, ``three cooks``."""
        rng = self.rng
        role = self.grammar.roles.pick(rng)
        plural = rng.random() < 0.35
        adj = [_PERSON_ADJECTIVES.pick(rng)] if rng.random() < 0.25 else []
        head = [*adj, role.pl if plural else role.sg]
        if not plural:
            det = "the" if rng.random() < 0.7 else _article(head[0])
            return _Subject([det, *head], False, None)
        r = rng.random()
        det = ["the"] if r < 0.55 else [_NUMBERS.pick(rng)] if r < 0.8 else _QUANTIFIERS.pick(rng)
        return _Subject([*det, *head], True, "their")

    def person(self) -> _Subject:
        """The subject of an action: a known character (name or pronoun), a pair, or a role."""
        rng = self.rng
        chars = self.introduced
        r = rng.random()
        if chars and r < 0.7:
            char = self.last if self.last in chars and rng.random() < 0.7 else _uniform(rng, chars)
            subject, _, possessive = char.pronouns
            if char is self.last and rng.random() < 0.6:
                tokens = [subject]
            else:
                tokens = [char.name]
            self.last = char
            return _Subject(tokens, False, possessive, (char,))
        if len(chars) >= 2 and r < 0.8:
            a = _uniform(rng, chars)
            b = _uniform(rng, [c for c in chars if c is not a])
            self.last = None
            return _Subject([a.name, "and", b.name], True, "their", (a, b))
        return self.role_np()

    def recipient(self, subject: _Subject) -> list[str]:
        """Whom the subject gives something to: another character, a role, or a friend."""
        rng = self.rng
        others = [c for c in self.introduced if c not in subject.characters]
        r = rng.random()
        if others and r < 0.5:
            char = _uniform(rng, others)
            return [char.pronouns[1]] if rng.random() < 0.4 else [char.name]
        if r < 0.75:
            return self.role_np().tokens
        who = _uniform(rng, _SHARED_PEOPLE)
        det = subject.possessive if subject.possessive and rng.random() < 0.6 else _article(who)
        return [det, who]  # "she gave her cousin ...", "they showed an aunt ..."

    # -- clauses (token lists without the final full stop) ----------------------------------

    def transitive(self, past: bool) -> list[str]:
        """``she fed her hungry goats in the barn``; sometimes progressive."""
        subj = self.person()
        noun = self.noun()
        verb = self.verb_for(noun)
        plural = self.chance(0.5)
        obj = self.np(noun, plural, subj.possessive)
        if self.chance(0.12) and verb not in _GENERAL_VERBS.items:  # not "was needing"
            vp = [self.be(subj.plural, past), verb.ing]
        else:
            vp = [verb.finite(past, subj.plural)]
        out = [*subj.tokens, *vp, *obj]
        r = self.rng.random()
        if r < 0.45:
            out += self.place(subj.possessive)
        elif r < 0.55:
            out += self.time(past)
        elif r < 0.63:
            out += _IDIOMS.pick(self.rng)
        return out

    def control(self, past: bool) -> list[str]:
        """``the cooks wanted to stir the stew``: the verb after ``to`` is always the base form."""
        subj = self.person()
        noun = self.noun()
        verb = self.verb_for(noun)
        head = _CONTROL_VERBS.pick(self.rng).finite(past, subj.plural)
        obj = self.np(noun, self.chance(0.5), subj.possessive)
        return [*subj.tokens, head, "to", verb.base, *obj]

    def give(self, past: bool) -> list[str]:
        """``nora gave the old shepherd three woolly lambs``."""
        subj = self.person()
        to = self.recipient(subj)
        noun, plural, obj = self.thing()
        verb = _GIVE_VERBS.pick(self.rng).finite(past, subj.plural)
        return [*subj.tokens, verb, *to, *obj]

    def intransitive(self, past: bool) -> list[str]:
        """``the hungry goats grazed near the stable``."""
        groups = self.grammar.intransitive_groups
        noun, plural, np = self.thing(groups)
        verb = self.grammar.intransitive[noun.group].pick(self.rng)
        out = [*np, verb.finite(past, plural)]
        if self.chance(0.6):
            out += self.place()
        return out

    def copula(self, past: bool) -> list[str]:
        """``the plums were ripe and juicy``: predicate adjectives collocate too."""
        noun = self.noun()
        plural = self.chance(0.5)
        adjs = self.grammar.adjectives[noun.group]
        out = [
            *self.np(noun, plural),
            self.be(plural, past),
            *_INTENSIFIERS.pick(self.rng),
            adjs.pick(self.rng),
        ]
        if self.chance(0.3):
            second = adjs.pick(self.rng)
            if second != out[-1]:
                out += ["or" if "not" in out else "and", second]  # "not ripe or juicy"
        return out

    def existential(self, past: bool) -> list[str]:
        """``there were seven ripe plums in the barn``: ``there`` agrees with its noun."""
        noun = self.noun()
        plural = self.chance(0.55)
        adj = self.adjective(noun)
        head = [adj, noun.pl if plural else noun.sg] if adj else [noun.pl if plural else noun.sg]
        if plural:
            r = self.rng.random()
            det = [_NUMBERS.pick(self.rng)] if r < 0.6 else _QUANTIFIERS.pick(self.rng)
        else:
            det = [_article(head[0])]
        return ["there", self.be(plural, past), *det, *head, *self.place()]

    def feeling(self, past: bool) -> list[str]:
        """``she was tired`` / ``the farmers feel proud of their plums``."""
        subj = self.person()
        verb = self.be(subj.plural, past) if self.chance(0.6) else _FEEL.finite(past, subj.plural)
        if subj.possessive and self.chance(0.35):
            noun = self.noun()
            return [
                *subj.tokens,
                verb,
                _OF_ADJECTIVES.pick(self.rng),
                "of",
                subj.possessive,
                noun.pl if self.chance(0.5) else noun.sg,
            ]
        out = [*subj.tokens, verb, _PERSON_ADJECTIVES.pick(self.rng)]
        if self.chance(0.2):
            out += self.time(past)
        return out

    def when_clause(self, past: bool) -> list[str]:
        """``when the goats were hungry , she fed them``: ``it``/``them`` agree with the noun."""
        noun = self.noun()
        plural = self.chance(0.5)
        adj = self.grammar.adjectives[noun.group].pick(self.rng)
        first = [_WHEN.pick(self.rng), *self.np(noun, plural), self.be(plural, past), adj]
        subj = self.person()
        verb = self.verb_for(noun).finite(past, subj.plural)
        return [*first, ",", *subj.tokens, verb, "them" if plural else "it"]

    def simple(self, past: bool) -> list[str]:
        r = self.rng.random()
        if r < 0.5:
            return self.transitive(past)
        if r < 0.65:
            return self.intransitive(past)
        if r < 0.8:
            return self.copula(past)
        if r < 0.9:
            return self.control(past)
        return self.feeling(past)

    # -- sentences ------------------------------------------------------------------------

    def introduce(self, char: _Character, past: bool) -> list[str]:
        """A character's first appearance, always by name and with their role."""
        rng = self.rng
        self.introduced.append(char)
        self.last = char
        role = char.role.sg
        adj = [_PERSON_ADJECTIVES.pick(rng)] if rng.random() < 0.4 else []
        a = _article((adj or [role])[0])
        r = rng.random()
        if r < 0.35:
            lives = "lived" if past else "lives"
            place, _ = self.grammar.places.pick(rng)
            out = [char.name, self.be(False, past), a, *adj, role, "who", lives, "near", "the"]
            return [*out, place, "."]
        if r < 0.6:
            return ["there", self.be(False, past), a, *adj, role, "called", char.name, "."]
        if r < 0.8:
            has = "had" if past else "has"
            years = _NUMBERS.pick(rng)
            return [char.name, has, "been", a, *adj, role, "for", years, "years", "."]
        # Apposition: "nora , the baker , baked three pies ."
        noun = self.noun()
        verb = self.verb_for(noun).finite(past, False)
        obj = self.np(noun, self.chance(0.5), char.pronouns[2])
        return [char.name, ",", "the", role, ",", verb, *obj, "."]

    def sentence(self, first: bool) -> list[str]:
        rng = self.rng
        # Tense is a document's, with an occasional switch -- but never within a sentence.
        past = self.past if rng.random() < 0.9 else not self.past
        waiting = [c for c in self.characters if c not in self.introduced]
        if waiting and (first and rng.random() < 0.8 or not first and rng.random() < 0.3):
            return self.introduce(waiting[0], past)
        r = rng.random()
        if r < 0.3:
            out = self.simple(past)
        elif r < 0.4:
            out = self.existential(past)
        elif r < 0.52:
            conj = _CONJUNCTIONS.pick(rng)
            out = [*self.simple(past), ",", conj, *self.simple(past)]
        elif r < 0.6:
            out = [*self.transitive(past), "because", *self.simple(past)]
        elif r < 0.67:
            out = self.when_clause(past)
        elif r < 0.77:
            out = [*self.time(past), ",", *self.simple(past)]
        elif r < 0.84:
            out = [*_OPENERS.pick(rng), *self.simple(past)]
        elif r < 0.9:
            out = self.give(past)
        elif r < 0.93 and not self.said:
            self.said = True
            out = [*_SAYING_FRAMES.pick(rng), *_uniform(rng, self.topic.sayings).split()]
        else:
            out = self.transitive(past)
        return [*out, "."]


def _generate_document(seed: int, index: int) -> tuple[str, str]:
    rng = random.Random(f"{seed}:{index}")
    topic = TOPICS[_uniform(rng, _TOPIC_NAMES)]
    for _ in range(100):  # almost always once; a draft outside the size limits is redrawn
        sentences = _draft(_Document(rng, topic))
        words = sum(map(len, sentences))
        if MIN_SENTENCES <= len(sentences) and MIN_WORDS <= words <= MAX_WORDS:
            return topic.name, " ".join(token for sentence in sentences for token in sentence)
    raise RuntimeError(f"topic {topic.name!r}: no document within the size limits")  # a bug


def _draft(doc: _Document) -> list[list[str]]:
    """Sentences until a random length target (62-110 words) or ``MAX_SENTENCES``."""
    sentences: list[list[str]] = []
    words = 0
    target = 62 + int(doc.rng.random() * 49)  # stop after the sentence that reaches it
    while len(sentences) < MAX_SENTENCES and (words < target or len(sentences) < MIN_SENTENCES):
        for _ in range(10):
            state = doc.snapshot()
            sentence = doc.sentence(first=not sentences)
            if words + len(sentence) <= MAX_WORDS:
                break
            doc.restore(state)  # too long: forget it (and any character it introduced)
        else:
            break
        sentences.append(sentence)
        words += len(sentence)
    return sentences


# --------------------------------------------------------------------------------------
# Shared vocabulary (every topic uses it), from the word tables
# --------------------------------------------------------------------------------------


def _phrases(spec: str) -> _Zipf:
    """``"in the morning | at dawn"`` -> a sampler of token lists."""
    return _Zipf([p.split() for p in spec.split("|")])


def _verbs(spec: str) -> _Zipf:
    return _Zipf([_verb(v) for v in spec.split()])


FEMALE_NAMES, MALE_NAMES = words.FEMALE_NAMES, words.MALE_NAMES
_FEMALE_NAMES = _Zipf(FEMALE_NAMES)
_MALE_NAMES = _Zipf(MALE_NAMES)
_NUMBERS = _Zipf(words.NUMBERS.split())
_QUANTIFIERS = _phrases(words.QUANTIFIERS)
_GENERAL_ADJECTIVES = _Zipf(words.GENERAL_ADJECTIVES.split())
_PERSON_ADJECTIVES = _Zipf(words.PERSON_ADJECTIVES.split())
_OF_ADJECTIVES = _Zipf(words.OF_ADJECTIVES.split())
_PLACE_ADJECTIVES = _Zipf(words.PLACE_ADJECTIVES.split())
_INTENSIFIERS = _phrases(words.INTENSIFIERS)
_GENERAL_VERBS = _verbs(words.GENERAL_VERBS)
_CONTROL_VERBS = _verbs(words.CONTROL_VERBS)
_GIVE_VERBS = _verbs(words.GIVE_VERBS)
_FEEL = _verb(words.FEEL)
_SHARED_PEOPLE = words.SHARED_PEOPLE
_CONJUNCTIONS = _Zipf(words.CONJUNCTIONS.split())
_WHEN = _Zipf(words.WHEN.split())
_OPENERS = _phrases(words.OPENERS)
_TIMES = _phrases(words.TIMES)
_PAST_TIMES = _phrases(words.PAST_TIMES)
_PRESENT_TIMES = _phrases(words.PRESENT_TIMES)
_IDIOMS = _phrases(words.IDIOMS)
_SAYING_FRAMES = _phrases(words.SAYING_FRAMES)


# --------------------------------------------------------------------------------------
# Compiling the tables
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _Grammar:
    """A topic's tables as samplers, in table (= frequency) order."""

    roles: _Zipf
    nouns: _Zipf
    group_nouns: dict[str, _Zipf]
    adjectives: dict[str, _Zipf]
    verbs: dict[str, _Zipf]
    intransitive: dict[str, _Zipf]
    intransitive_groups: tuple[str, ...]
    places: _Zipf


def _compile(name: str, data: dict) -> tuple[Topic, _Grammar]:
    roles = tuple(_noun(r, "role") for r in data["roles"].split())
    group_nouns = {
        g: tuple(_noun(n, g) for n in spec[1].split()) for g, spec in data["groups"].items()
    }
    # Interleave the groups so that every group has common and rare nouns.
    nouns = tuple(
        noun
        for rank in range(max(len(ns) for ns in group_nouns.values()))
        for ns in group_nouns.values()
        if rank < len(ns)
        for noun in (ns[rank],)
    )
    adjectives = {g: tuple(spec[0].split()) for g, spec in data["groups"].items()}
    verbs: dict[str, list[Verb]] = {g: [] for g in group_nouns}
    for spec in data["verbs"].split():
        form, _, groups = spec.partition(":")
        for group in groups.split(","):
            verbs[group].append(_verb(form))
    intransitive = {
        g: tuple(_verb(v) for v in spec.split()) for g, spec in data["intransitive"].items()
    }
    places = tuple(
        (p, tuple(preps.split(",")))
        for p, _, preps in (s.partition(":") for s in data["places"].split())
    )
    for group, vs in verbs.items():
        if not vs:
            raise ValueError(f"topic {name!r}: group {group!r} has no verb")
    topic_words = {r.sg for r in roles} | {r.pl for r in roles}
    topic_words |= {n.sg for n in nouns} | {n.pl for n in nouns}
    topic_words |= {a for adjs in adjectives.values() for a in adjs}
    for v in [
        *(v for vs in verbs.values() for v in vs),
        *(v for vs in intransitive.values() for v in vs),
    ]:
        topic_words |= {v.base, v.s, v.past, v.ing}
    topic_words |= {p for p, _ in places}
    topic = Topic(
        name=name,
        roles=roles,
        nouns=nouns,
        adjectives=adjectives,
        verbs={g: tuple(vs) for g, vs in verbs.items()},
        intransitive=intransitive,
        places=places,
        sayings=tuple(data["sayings"]),
        words=frozenset(topic_words),
    )
    grammar = _Grammar(
        roles=_Zipf(roles),
        nouns=_Zipf(nouns),
        group_nouns={g: _Zipf(ns) for g, ns in group_nouns.items()},
        adjectives={g: _Zipf(a) for g, a in adjectives.items()},
        verbs={g: _Zipf(vs) for g, vs in verbs.items()},
        intransitive={g: _Zipf(vs) for g, vs in intransitive.items()},
        intransitive_groups=tuple(intransitive),
        places=_Zipf(places),
    )
    return topic, grammar


def _shared_words() -> frozenset[str]:
    shared = set(words.GRAMMAR_WORDS.split()) | set(FEMALE_NAMES) | set(MALE_NAMES)
    for zipf in (
        _NUMBERS,
        _GENERAL_ADJECTIVES,
        _PERSON_ADJECTIVES,
        _OF_ADJECTIVES,
        _PLACE_ADJECTIVES,
        _CONJUNCTIONS,
        _WHEN,
    ):
        shared.update(zipf.items)
    for phrases in (
        _QUANTIFIERS,
        _INTENSIFIERS,
        _OPENERS,
        _TIMES,
        _PAST_TIMES,
        _PRESENT_TIMES,
        _IDIOMS,
        _SAYING_FRAMES,
    ):
        shared.update(w for phrase in phrases.items for w in phrase)
    for verbs in (_GENERAL_VERBS, _CONTROL_VERBS, _GIVE_VERBS):
        shared.update(f for v in verbs.items for f in (v.base, v.s, v.past, v.ing))
    shared.update(_SHARED_PEOPLE)
    for data in words.TOPIC_DATA.values():
        shared.update(w for saying in data["sayings"] for w in saying.split())
        shared.update(p for place in data["places"].split() for p in place.split(":")[1].split(","))
    # A word of a topic's own table counts as that topic's, even when a saying uses it too.
    return frozenset(shared).difference(*(topic.words for topic in TOPICS.values()))


_COMPILED = {name: _compile(name, data) for name, data in words.TOPIC_DATA.items()}
TOPICS: dict[str, Topic] = {name: topic for name, (topic, _) in _COMPILED.items()}
_GRAMMARS: dict[str, _Grammar] = {name: grammar for name, (_, grammar) in _COMPILED.items()}
_TOPIC_NAMES: tuple[str, ...] = tuple(TOPICS)
_SHARED_WORDS = _shared_words()
