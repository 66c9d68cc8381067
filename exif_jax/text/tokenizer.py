"""distilbert-base-uncased WordPiece tokenizer from the bundled vocabulary, with bucketed padding.

`ExifTokenizer().encode(texts)` returns `input_ids` / `attention_mask` (int32 numpy, `[B, L]`) of
`[CLS] tokens [SEP]` followed by `[PAD]` (id 0), with `L` the shortest of `DEFAULT_BUCKETS` that fits the longest
text, so a batch of short EXIF texts is not padded to 512. Texts longer than `L` (`max_len`, or the largest bucket)
are truncated to `L - 1` tokens + `[SEP]` and counted in `num_truncated`.

The tokenizer is the Rust `tokenizers` WordPiece pipeline configured as distilbert-base-uncased (BERT normaliser:
clean text, CJK split, lowercase + strip accents; BERT pre-tokeniser; 100-character word limit) and built from
`exif_jax/assets/vocab.txt` only: nothing is downloaded, and HF_HUB_OFFLINE=1 works. It produces the same ids as
the pure-Python reference `transformers.models.bert.tokenization_bert_legacy.BertTokenizerLegacy(vocab_file=...)`
(tested). Note that in transformers 5 `BertTokenizerFast(vocab_file=...)`/`DistilBertTokenizer(vocab_file=...)`
silently ignore `vocab_file` and tokenize everything to `[UNK]`; this module does not use them.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["DEFAULT_BUCKETS", "DEFAULT_VOCAB", "ExifTokenizer", "bucket_for"]

DEFAULT_BUCKETS = (32, 64, 128, 256, 512)
DEFAULT_VOCAB = Path(__file__).resolve().parents[1] / "assets" / "vocab.txt"
PAD, UNK, CLS, SEP = "[PAD]", "[UNK]", "[CLS]", "[SEP]"


def bucket_for(length: int, buckets: Sequence[int] = DEFAULT_BUCKETS) -> int:
    """The shortest bucket >= `length` (the largest bucket if none fits)."""
    for b in buckets:
        if length <= b:
            return int(b)
    return int(buckets[-1])


class ExifTokenizer:
    """WordPiece tokenizer (distilbert-base-uncased) with `[CLS] ... [SEP]`, pad id 0 and bucketed lengths."""

    def __init__(self, vocab_file: str | os.PathLike | None = None, buckets: Sequence[int] = DEFAULT_BUCKETS,
                 lowercase: bool = True):
        from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers

        path = Path(vocab_file) if vocab_file is not None else DEFAULT_VOCAB
        try:
            with open(path, encoding="utf-8") as f:
                tokens = [line.rstrip("\n") for line in f]
        except OSError as e:
            raise ValueError(f"{path}: cannot read WordPiece vocabulary: {e.strerror or e}") from None
        vocab = {tok: i for i, tok in enumerate(tokens)}
        for special in (PAD, UNK, CLS, SEP):
            if special not in vocab:
                raise ValueError(f"{path}: vocabulary has no {special} token")
        buckets = tuple(sorted(int(b) for b in buckets))
        if not buckets or buckets[0] < 2:
            raise ValueError(f"buckets must be lengths >= 2, got {buckets}")
        self.vocab_file = path
        self.buckets = buckets
        self.vocab_size = len(tokens)
        self.pad_id, self.unk_id, self.cls_id, self.sep_id = (vocab[t] for t in (PAD, UNK, CLS, SEP))
        tok = Tokenizer(models.WordPiece(vocab, unk_token=UNK, max_input_chars_per_word=100))
        tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None,
                                                    lowercase=lowercase)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece(prefix="##")
        self._tok = tok

    @property
    def max_len(self) -> int:
        return self.buckets[-1]

    def tokenize(self, text: str) -> list[str]:
        """WordPiece tokens of `text`, without special tokens."""
        return self._tok.encode(text, add_special_tokens=False).tokens

    def _word_ids(self, texts: Sequence[str]) -> list[list[int]]:
        if isinstance(texts, str):
            raise TypeError("encode() takes a list of texts, got a single str")
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"text {i} is {type(t).__name__}, not str")
        return [e.ids for e in self._tok.encode_batch(list(texts), add_special_tokens=False)]

    def token_lengths(self, texts: Sequence[str]) -> np.ndarray:
        """Untruncated lengths including `[CLS]` and `[SEP]` (int64 `[B]`)."""
        return np.array([len(ids) + 2 for ids in self._word_ids(texts)], dtype=np.int64)

    def encode(self, texts: Sequence[str], max_len: int | None = None) -> dict:
        """Encodes texts to `dict(input_ids=int32[B, L], attention_mask=int32[B, L], num_truncated=int)`.

        `L = max_len` if given, else the shortest bucket that fits the longest text (at most the largest bucket).
        """
        word_ids = self._word_ids(texts)
        longest = max((len(ids) + 2 for ids in word_ids), default=2)
        if max_len is not None:
            if int(max_len) < 2:
                raise ValueError(f"max_len must be >= 2 ([CLS] and [SEP]), got {max_len}")
            length = int(max_len)
        else:
            length = bucket_for(longest, self.buckets)
        input_ids = np.full((len(word_ids), length), self.pad_id, dtype=np.int32)
        attention_mask = np.zeros((len(word_ids), length), dtype=np.int32)
        num_truncated = 0
        for row, ids in enumerate(word_ids):
            if len(ids) + 2 > length:
                ids = ids[: length - 2]
                num_truncated += 1
            n = len(ids) + 2
            input_ids[row, 0] = self.cls_id
            input_ids[row, 1 : n - 1] = ids
            input_ids[row, n - 1] = self.sep_id
            attention_mask[row, :n] = 1
        return {"input_ids": input_ids, "attention_mask": attention_mask, "num_truncated": num_truncated}

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return self._tok.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)

    def __call__(self, texts: Sequence[str], max_len: int | None = None) -> dict:
        return self.encode(texts, max_len=max_len)

    def __repr__(self) -> str:
        return f"ExifTokenizer(vocab_file={str(self.vocab_file)!r}, vocab_size={self.vocab_size}, buckets={self.buckets})"
