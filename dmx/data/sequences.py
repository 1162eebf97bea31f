"""Fixed-length training rows, cut from a split's token stream when they are read.

Nothing is materialised: a row is computed from a slice of the memory-mapped stream, so
the sequence length and the packing are load-time choices (one token cache serves them
all) and a corpus larger than memory streams from disk.

Two layouts, both led by [CLS] and padded with [PAD]:

* packed (``data.packing=true``): the stream (documents with [SEP] after each) cut into
  rows of ``seq_len - 1`` tokens; only the last row is padded. This is dmx's historical
  layout, bit for bit (:func:`pack` is its reference).
* per document (``packing=false``): each document, with its [SEP], gets rows of its own;
  a long one continues in further rows, and each document's last row is padded.

Word starts travel with their tokens; [CLS], [SEP] and padding are each a word of their
own, and a word cut by a row boundary begins a word again after [CLS], so no word reaches
back into a special token.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from dmx.data.token_stream import TokenStream
from dmx.data.tokenizer import CLS_ID, PAD_ID, SEP_ID


def _row(ids: np.ndarray, starts: np.ndarray, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[CLS] + ``ids`` (at most seq_len - 1 of them), padded; the word starts beside them."""
    row = np.full(seq_len, PAD_ID, dtype=np.int64)
    row[0] = CLS_ID
    row[1 : 1 + len(ids)] = ids
    return torch.from_numpy(row), _starts_row(starts, seq_len)


def _starts_row(starts: np.ndarray, seq_len: int) -> torch.Tensor:
    """Starts (of words, or of any unit of whole words) laid out as a row: [CLS] and
    padding each begin one of their own, and so does the first token after [CLS]."""
    words = np.ones(seq_len, dtype=np.bool_)
    words[1 : 1 + len(starts)] = starts
    words[1] = True  # the first token after [CLS] always begins a word
    return torch.from_numpy(words)


class Sequences(Dataset):
    """A split's rows: ``len(rows)`` and ``rows[i] -> (ids, word_starts)``, an int64 and a
    bool tensor of ``seq_len`` each. Subclasses say where row ``i`` lies in the stream."""

    def __init__(self, stream: TokenStream, seq_len: int) -> None:
        if seq_len < 2:
            raise ValueError(f"seq_len must be >= 2, got {seq_len}")
        self.stream, self.seq_len, self.body = stream, seq_len, seq_len - 1

    def span(self, i: int) -> tuple[int, int]:
        """Where row ``i``'s tokens lie in the stream: [begin, end)."""
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= i < len(self):
            raise IndexError(f"row {i} out of range for {len(self)} rows")
        begin, end = self.span(int(i))
        return _row(self.stream.ids[begin:end], self.stream.starts[begin:end], self.seq_len)

    def starts_of(self, i: int, stream_starts: np.ndarray) -> torch.Tensor:
        """Row ``i``'s slice of another per-token start stream of the same split (PMI unit
        starts), laid out as its word starts are."""
        begin, end = self.span(int(i))
        return _starts_row(stream_starts[begin:end], self.seq_len)

    def to_numpy(self) -> tuple[np.ndarray, np.ndarray]:
        """Every row, materialised: (n, seq_len) int32 ids and uint8 word starts. For small
        corpora, tests and benchmarks; training reads rows one at a time."""
        ids = np.empty((len(self), self.seq_len), dtype=np.int32)
        words = np.empty((len(self), self.seq_len), dtype=np.uint8)
        for i in range(len(self)):
            row, starts = self[i]
            ids[i], words[i] = row.numpy(), starts.numpy()
        return ids, words

    def real_tokens(self) -> int:
        """Positions that are not padding, summed over the rows ([CLS] and [SEP] count)."""
        return len(self.stream.ids) + len(self)


class PackedSequences(Sequences):
    """The stream cut into rows of [CLS] + seq_len - 1 tokens, across document bounds."""

    def __len__(self) -> int:
        return -(-len(self.stream.ids) // self.body)

    def span(self, i: int) -> tuple[int, int]:
        return i * self.body, min((i + 1) * self.body, len(self.stream.ids))


class DocumentSequences(Sequences):
    """Each document (with its [SEP]) in rows of its own; a long one takes several."""

    def __init__(self, stream: TokenStream, seq_len: int) -> None:
        super().__init__(stream, seq_len)
        offsets = np.asarray(stream.offsets, dtype=np.int64)
        rows_per_doc = -(-np.diff(offsets) // self.body)
        # first_row[d]: the first row of document d; first_row[-1]: the number of rows.
        self.first_row = np.concatenate([[0], np.cumsum(rows_per_doc)]).astype(np.int64)

    def __len__(self) -> int:
        return int(self.first_row[-1])

    def span(self, i: int) -> tuple[int, int]:
        doc = int(np.searchsorted(self.first_row, i, side="right")) - 1
        offsets = self.stream.offsets
        begin = int(offsets[doc]) + (i - int(self.first_row[doc])) * self.body
        return begin, min(begin + self.body, int(offsets[doc + 1]))


def make_sequences(stream: TokenStream, seq_len: int, packing: bool) -> Sequences:
    return (PackedSequences if packing else DocumentSequences)(stream, seq_len)


def pack(
    docs: list[list[int]], seq_len: int, starts: list[list[int]] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate documents with [SEP] after each and cut into [CLS]-led sequences.

    The packed layout's reference, in memory, on lists: :class:`PackedSequences` must
    produce exactly these rows from a token stream (a test holds it to that). Returns the
    ids and the word starts beside them (every token its own word when ``starts`` is None).
    """
    stream: list[int] = []
    start_stream: list[int] = []
    for i, ids in enumerate(docs):
        stream.extend(ids)
        start_stream.extend(starts[i] if starts is not None else [1] * len(ids))
        stream.append(SEP_ID)
        start_stream.append(1)
    body = seq_len - 1
    n_seq = -(-len(stream) // body)
    out = np.full((n_seq, seq_len), PAD_ID, dtype=np.int32)
    words = np.ones((n_seq, seq_len), dtype=np.uint8)
    out[:, 0] = CLS_ID
    flat = np.asarray(stream, dtype=np.int32)
    flat_starts = np.asarray(start_stream, dtype=np.uint8)
    for i in range(n_seq):
        chunk = flat[i * body : (i + 1) * body]
        out[i, 1 : 1 + len(chunk)] = chunk
        words[i, 1 : 1 + len(chunk)] = flat_starts[i * body : (i + 1) * body]
    words[:, 1] = 1
    return out, words


def word_starts(word_ids: list[int | None]) -> list[int]:
    """1 where a token begins a word, from an encoding's ``word_ids`` (the reference that
    dmx.data.tokenize_corpus.word_starts_array computes without a Python loop)."""
    return [int(i == 0 or w is None or w != word_ids[i - 1]) for i, w in enumerate(word_ids)]
