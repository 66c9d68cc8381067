"""ExifTokenizer against the pure-Python reference WordPiece tokenizer of transformers (BertTokenizerLegacy, the
former slow BertTokenizer, distilbert-base-uncased settings) built from the same bundled vocab.txt."""
import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exif_jax.exif.render import TagTable, get_renderer
from exif_jax.exif.yfcc import iter_yfcc_file
from exif_jax.text.tokenizer import DEFAULT_BUCKETS, DEFAULT_VOCAB, ExifTokenizer, bucket_for


@pytest.fixture(scope="module")
def reference():
    from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy

    return BertTokenizerLegacy(vocab_file=str(DEFAULT_VOCAB), do_lower_case=True)


@pytest.fixture(scope="module")
def tok():
    return ExifTokenizer()


@pytest.fixture(scope="module")
def texts(shared_data):
    rows = list(iter_yfcc_file(shared_data / "yfcc_style" / "exif_lines_dev.tsv"))
    table = TagTable.from_item_lists(items for _, items in rows)
    out = []
    for name in ("legacy", "clean"):
        render = get_renderer(name, tag_table=table)
        out += [t for t in (render(items) for _, items in rows) if t]
    # raw item text too: non-ASCII (degree signs, mu), control characters, very long values
    out += [" ".join(f"{t} = {v}" for _, t, v in items[:20]) for _, items in rows[:30]]
    return out


def _ref_encode(reference, texts, length):
    enc = reference(texts, padding="max_length", truncation=True, max_length=length)
    return np.array(enc["input_ids"]), np.array(enc["attention_mask"])


def test_special_ids_match_distilbert(tok, reference):
    assert (tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id) == tuple(
        reference.convert_tokens_to_ids(["[PAD]", "[UNK]", "[CLS]", "[SEP]"])) == (0, 100, 101, 102)
    assert tok.vocab_size == len(reference.get_vocab()) == 30522


def test_rendered_exif_texts_match_reference_ids_and_bucket(tok, reference, texts):
    ref_lengths = np.array([len(reference(t)["input_ids"]) for t in texts])
    np.testing.assert_array_equal(tok.token_lengths(texts), ref_lengths)
    for start in range(0, len(texts), 64):
        batch = texts[start:start + 64]
        enc = tok.encode(batch)
        longest = ref_lengths[start:start + 64].max()
        expected_len = min([b for b in DEFAULT_BUCKETS if b >= longest] or [512])
        assert enc["input_ids"].shape == (len(batch), expected_len)
        assert enc["input_ids"].dtype == np.int32 and enc["attention_mask"].dtype == np.int32
        ref_ids, ref_mask = _ref_encode(reference, batch, expected_len)
        np.testing.assert_array_equal(enc["input_ids"], ref_ids)
        np.testing.assert_array_equal(enc["attention_mask"], ref_mask)
        assert enc["num_truncated"] == int((ref_lengths[start:start + 64] > expected_len).sum())


def test_truncation_at_max_len_matches_reference_and_is_counted(tok, reference, texts):
    batch = texts[:40]
    ref_lengths = np.array([len(reference(t)["input_ids"]) for t in batch])
    for max_len in (16, 48):
        enc = tok.encode(batch, max_len=max_len)
        ref_ids, ref_mask = _ref_encode(reference, batch, max_len)
        np.testing.assert_array_equal(enc["input_ids"], ref_ids)
        np.testing.assert_array_equal(enc["attention_mask"], ref_mask)
        assert enc["num_truncated"] == int((ref_lengths > max_len).sum()) > 0
        assert (enc["input_ids"][ref_lengths > max_len, -1] == 102).all()


def test_bucket_choice_never_pads_to_512_needlessly(tok):
    assert tok.encode(["Make: Canon"])["input_ids"].shape == (1, 32)
    assert tok.encode(["a " * 31])["input_ids"].shape == (1, 64)  # 31 words + CLS + SEP = 33 tokens
    assert tok.encode(["a " * 30])["input_ids"].shape == (1, 32)
    enc = tok.encode(["a " * 600, "b"])
    assert enc["input_ids"].shape == (2, 512) and enc["num_truncated"] == 1
    assert enc["input_ids"].shape == (2, 512) and enc["attention_mask"][1].sum() == 3
    assert tok.encode([])["input_ids"].shape == (0, 32)
    assert [bucket_for(n) for n in (1, 32, 33, 129, 512, 900)] == [32, 32, 64, 256, 512, 512]


# Scripts EXIF text can contain (all in Unicode <= 3.0): ASCII with control characters, Latin, combining accents,
# Greek (the mu of "Olympus μ"), Cyrillic, general punctuation, letter-like symbols, CJK, full-width forms.
# Characters added in recent Unicode versions are left out: the Rust `tokenizers` tables are older than Python's
# (e.g. U+2E43 is punctuation for Python only; U+08CA, U+119D4 are combining marks for Python only).
_RANGES = [(0x00, 0x24F), (0x300, 0x36F), (0x370, 0x3FF), (0x400, 0x4FF), (0x2000, 0x206F), (0x2100, 0x214F),
           (0x3000, 0x303F), (0x4E00, 0x4FFF), (0xFF00, 0xFFEF)]
# Capital sigma is left out too: Python's str.lower() maps a word-final "Σ" to "ς" (context-sensitive), the Rust
# library to "σ" (as Hugging Face's fast tokenizers do everywhere).
_chars = st.one_of(*[st.characters(min_codepoint=a, max_codepoint=b, blacklist_categories=("Cs", "Cn"),
                                   blacklist_characters="\u03a3")
                     for a, b in _RANGES])


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.text(_chars, max_size=60))
def test_arbitrary_unicode_matches_reference(tok, reference, text):
    # literal special-token strings ("[SEP]") are special to the reference only; EXIF text never contains them
    if "[" in text:
        text = text.replace("[", "(")
    assert tok.tokenize(text) == reference.tokenize(text)
    assert tok.encode([text], max_len=80)["input_ids"].tolist() == [
        reference(text, padding="max_length", truncation=True, max_length=80)["input_ids"]]


def test_loads_offline_without_transformers_or_network(tmp_path):
    code = ("import sys, json; from exif_jax.text import ExifTokenizer; t = ExifTokenizer(); "
            "e = t.encode(['F-Number: f/2.8']); "
            "print(json.dumps([e['input_ids'][0, :8].tolist(), 'transformers' in sys.modules]))")
    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    ids, imported = json.loads(out.stdout)
    assert ids == [101, 1042, 1011, 2193, 1024, 1042, 1013, 1016] and imported is False


def test_errors(tmp_path, tok):
    with pytest.raises(ValueError, match=r"nope\.txt: cannot read WordPiece vocabulary"):
        ExifTokenizer(tmp_path / "nope.txt")
    small = tmp_path / "vocab.txt"
    small.write_text("[PAD]\n[UNK]\nhello\n")
    with pytest.raises(ValueError, match=r"vocab\.txt: vocabulary has no \[CLS\] token"):
        ExifTokenizer(small)
    with pytest.raises(TypeError, match="list of texts"):
        tok.encode("Make: Canon")
    with pytest.raises(TypeError, match="text 1 is NoneType"):
        tok.encode(["a", None])
    with pytest.raises(ValueError, match="max_len must be >= 2"):
        tok.encode(["a"], max_len=1)
