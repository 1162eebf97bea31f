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
"""

from __future__ import annotations

from collections.abc import Sequence

from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = range(len(SPECIAL_TOKENS))
N_SPECIAL = len(SPECIAL_TOKENS)


def train_tokenizer(texts: Sequence[str], vocab_size: int) -> Tokenizer:
    """Fit BPE on ``texts`` (the training split only, so validation stays unseen)."""
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


def check_special_tokens(tokenizer: Tokenizer) -> None:
    for expected_id, token in enumerate(SPECIAL_TOKENS):
        if tokenizer.token_to_id(token) != expected_id:
            raise ValueError(f"tokenizer must map {token} to id {expected_id}")
