"""A BPE tokenizer trained on the training split, with BERT's special tokens first.

The special tokens take ids 0..4 in a fixed order, which the masking relies on: ids below
``N_SPECIAL`` are never selected and never drawn as random replacements.

Why BPE and not BERT's WordPiece: with tokenizers 0.23, WordPieceTrainer returns a
different vocabulary from run to run on the same text (its alphabet comes out of a hash
map, and ties between merges then break differently), so two fresh machines would train
different models from the same seed. BpeTrainer breaks ties by the pair itself and gives
the same vocabulary, ids included, every time (but not with a continuing-subword prefix,
which brings the hash-map order back); a test holds it to that. Word boundaries, which
whole-word masking needs, come from each encoding's ``word_ids``.

An existing tokenizer (``data.tokenizer=PATH``) may number its special tokens otherwise
(BERT: [PAD]=0, [UNK]=100, [CLS]=101, [SEP]=102, [MASK]=103). :func:`load_tokenizer`
renumbers it so that the five come first and every other token keeps its order after
them: the ids dmx stores and the tokenizer it hands out then agree, and the masking's
"ids below N_SPECIAL" rule holds for any tokenizer.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import tokenizers
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

from dmx.common.errors import UserError, one_line

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = range(len(SPECIAL_TOKENS))
N_SPECIAL = len(SPECIAL_TOKENS)

# Names how train_tokenizer builds a tokenizer; part of the token cache's fingerprint, so
# change it with the recipe below and stale caches are rebuilt instead of reused.
RECIPE = "bpe/bert-normalizer-lowercase/bert-pre-tokenizer/specials-first/v1"


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> Tokenizer:
    """Fit BPE on ``texts`` (the training split only, so validation stays unseen).

    ``texts`` may be any iterable, a generator included, so a corpus larger than memory is
    streamed through the trainer rather than held as a list.
    """
    tokenizer = Tokenizer(models.BPE(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    check_special_tokens(tokenizer)
    return tokenizer


def recipe_fingerprint(vocab_size: int) -> dict[str, Any]:
    """What decides a trained tokenizer besides its text: for the token cache's fingerprint."""
    return {"recipe": RECIPE, "vocab_size": vocab_size, "tokenizers": tokenizers.__version__}


def check_special_tokens(tokenizer: Tokenizer) -> None:
    for expected_id, token in enumerate(SPECIAL_TOKENS):
        if tokenizer.token_to_id(token) != expected_id:
            raise ValueError(f"tokenizer must map {token} to id {expected_id}")


def tokenizer_file(path: str | Path) -> Path:
    """``data.tokenizer``'s file, which must exist (UserError otherwise)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise UserError(
            f"data.tokenizer={file} does not exist; point it at a tokenizer.json, or set "
            "data.tokenizer=null to train one"
        )
    return file


def file_fingerprint(path: str | Path) -> str:
    """sha256 of a tokenizer file's bytes: a different tokenizer is a different cache."""
    return hashlib.sha256(tokenizer_file(path).read_bytes()).hexdigest()


def load_tokenizer(path: str | Path) -> Tokenizer:
    """An existing tokenizer.json, renumbered so that the special tokens are ids 0..4.

    Raises UserError when the file is missing or unreadable, or lacks one of the five
    special tokens (the masking cannot work without them).
    """
    path = tokenizer_file(path)
    try:
        text = path.read_text(encoding="utf-8")
        original = Tokenizer.from_str(text)
    except Exception as err:
        raise UserError(
            f"data.tokenizer={path} is not a tokenizers JSON file ({one_line(err)}); point it "
            "at a tokenizer.json saved by the tokenizers library"
        ) from None
    missing = [t for t in SPECIAL_TOKENS if original.token_to_id(t) is None]
    if missing:
        raise UserError(
            f"data.tokenizer={path} has no {', '.join(missing)} token; dmx needs "
            f"{', '.join(SPECIAL_TOKENS)} (add them, or set data.tokenizer=null to train one)"
        )
    if all(original.token_to_id(t) == i for i, t in enumerate(SPECIAL_TOKENS)):
        return original
    return _renumbered(original, json.loads(text), path)


def special_first_order(tokenizer: Tokenizer) -> dict[int, int]:
    """Old id -> new id: the five special tokens first, every other id in its old order."""
    ids = set(tokenizer.get_vocab(with_added_tokens=True).values())
    specials = [tokenizer.token_to_id(t) for t in SPECIAL_TOKENS]
    rest = sorted(ids - set(specials))
    return {old: new for new, old in enumerate([*specials, *rest])}


def _renumbered(original: Tokenizer, data: dict[str, Any], path: Path) -> Tokenizer:
    """Rewrite the tokenizer's JSON with new ids (model vocabulary, added tokens, the
    post-processor's special ids), then check that it encodes as the original did."""
    remap = special_first_order(original)
    model = data["model"]
    if isinstance(model.get("vocab"), dict):  # BPE, WordPiece, WordLevel
        model["vocab"] = {token: remap[i] for token, i in model["vocab"].items()}
    elif isinstance(model.get("vocab"), list):  # Unigram: a piece's id is its position
        pieces, inverse = model["vocab"], {new: old for old, new in remap.items()}
        names = {i: t for t, i in original.get_vocab(with_added_tokens=True).items()}
        # A special token that was only an added token now sits among the pieces: a
        # placeholder keeps the positions right, scored below every piece so never chosen.
        floor = min((score for _, score in pieces), default=0.0) - 10.0
        model["vocab"] = [
            pieces[inverse[new]] if inverse[new] < len(pieces) else [names[inverse[new]], floor]
            for new in range(1 + max(remap[i] for i in range(len(pieces))))
        ]
        if model.get("unk_id") is not None:
            model["unk_id"] = remap[model["unk_id"]]
    for added in data.get("added_tokens") or []:
        added["id"] = remap[added["id"]]
    if data.get("post_processor"):
        data["post_processor"] = _remap_processor(data["post_processor"], remap)
    try:
        renumbered = Tokenizer.from_str(json.dumps(data))
    except Exception as err:
        raise UserError(
            f"data.tokenizer={path}: could not renumber its special tokens to 0..4 "
            f"({one_line(err)}); save it with [PAD] [UNK] [CLS] [SEP] [MASK] as ids 0..4"
        ) from None
    probe = "The quick brown fox, [MASK] and [SEP]: 12 jumps over the lazy dog's back."
    expected = [remap[i] for i in original.encode(probe, add_special_tokens=False).ids]
    if renumbered.encode(probe, add_special_tokens=False).ids != expected:
        raise UserError(
            f"data.tokenizer={path}: renumbering its special tokens to 0..4 changed how it "
            "encodes; save it with [PAD] [UNK] [CLS] [SEP] [MASK] as ids 0..4"
        )
    check_special_tokens(renumbered)
    return renumbered


def _remap_processor(node: Any, remap: dict[int, int]) -> Any:
    """The special-token ids a post-processor holds (TemplateProcessing's ``ids`` lists,
    BertProcessing's and RobertaProcessing's ``[token, id]`` pairs), renumbered."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "ids" and isinstance(value, list):
                out[key] = [remap.get(i, i) for i in value]
            elif key in ("sep", "cls") and isinstance(value, list) and len(value) == 2:
                out[key] = [value[0], remap.get(value[1], value[1])]
            else:
                out[key] = _remap_processor(value, remap)
        return out
    if isinstance(node, list):
        return [_remap_processor(v, remap) for v in node]
    return node
