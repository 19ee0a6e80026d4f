"""Preprocessing at scale, on small inputs: several corpora, filters, bad lines, a full disk,
file names that cannot collide, the sentencepiece sample, and batches equal to format 1's."""

from __future__ import annotations

import errno
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from nmt_cli.corpus import EncodedSplit, load_meta
from nmt_cli.data import TrainBatches, bucket_batches
from nmt_cli.errors import ConfigError, DataError
from nmt_cli.prep_chunks import Corpus, Workers
from nmt_cli.prep_scan import sample_text, scan
from nmt_cli.preprocess import Options, PreprocessSummary, preprocess
from nmt_cli.tokenizer import Tokenizer, train_sentencepiece

_DE = ["Hund", "Katze", "Haus", "Garten", "Straße", "Mädchen", "Mann", "Frau"]
_EN = ["dog", "cat", "house", "garden", "street", "girl", "man", "woman"]
SRC = [f"der {_DE[i % 8]} sieht {i % 13} {_DE[(i * 3) % 8]}" for i in range(40)]
TGT = [f"the {_EN[i % 8]} sees {i % 13} {_EN[(i * 3) % 8]}" for i in range(40)]


def write_pair(folder: Path, name: str, src: Sequence[str], tgt: Sequence[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for lang, lines in (("de", src), ("en", tgt)):
        (folder / f"{name}.{lang}").write_text("".join(f"{x}\n" for x in lines), encoding="utf-8")
    return folder / name


def run(train: Path | list[Path], valid: Path, out: Path, **options: Any) -> PreprocessSummary:
    return preprocess("de", "en", train, valid, out, vocab_size=100, max_len=40,
                      options=Options(**options))  # fmt: skip


def decoded(out: Path, split: str = "train") -> list[tuple[str, str]]:
    tok, data = Tokenizer.load(out / "spm.model"), EncodedSplit.open(out, split)
    pairs = (data.pair(i) for i in range(len(data)))
    return [(tok.decode(s.tolist()), tok.decode(t.tolist())) for s, t in pairs]


def test_several_train_corpora_are_concatenated_and_counted(tmp_path: Path) -> None:
    a = write_pair(tmp_path / "raw", "a", SRC[:25], TGT[:25])
    b = write_pair(tmp_path / "raw", "b", [*SRC[25:], ""], [*TGT[25:], "lost"])
    valid = write_pair(tmp_path / "raw", "valid", SRC[:3], TGT[:3])
    summary = run([a, b], valid, tmp_path / "data")
    assert decoded(tmp_path / "data") == list(zip(SRC, TGT, strict=True))
    train = summary.splits[0]
    assert [(c.prefix, c.pairs_read, c.pairs_kept) for c in train.corpora] == [
        (a, 25, 25), (b, 16, 15),
    ]  # fmt: skip
    assert f"  {a}  25 of 25\n  {b}  15 of 16\n" in summary.to_text()
    assert load_meta(tmp_path / "data")["train_corpora"] == [str(a), str(b)]


def test_filters_are_counted_and_off_by_default(tmp_path: Path) -> None:
    src = [*SRC, SRC[0], SRC[1], SRC[1], "Berlin", "ja", SRC[2]]
    tgt = [*TGT, TGT[0], TGT[1], TGT[1], "Berlin", "yes " * 12, TGT[3]]  # last: not a repeat
    train = write_pair(tmp_path / "raw", "train", src, tgt)
    valid = write_pair(tmp_path / "raw", "valid", SRC[:3], TGT[:3])
    plain = run(train, valid, tmp_path / "plain").splits[0]
    assert plain.pairs_kept == 46 and plain.drops.total() == 0
    summary = run(train, valid, tmp_path / "data", max_ratio=3.0, dedup=True, drop_copies=True)
    drops = summary.splits[0].drops
    assert (drops.duplicates, drops.copies, drops.over_ratio) == (3, 1, 1)
    assert decoded(tmp_path / "data") == [*zip(SRC, TGT, strict=True), (SRC[2], TGT[3])]
    assert (
        "train  0 with an empty side, 0 longer than 40 tokens, 1 with a length ratio over 3, "
        "3 duplicates, 1 with source equal to target (of 46)"
    ) in summary.to_text()


def test_corrupt_line_in_the_middle_names_file_and_line(tmp_path: Path) -> None:
    train = write_pair(tmp_path / "raw", "train", SRC, TGT)
    valid = write_pair(tmp_path / "raw", "valid", SRC[:3], TGT[:3])
    lines = (tmp_path / "raw" / "train.en").read_bytes().split(b"\n")
    lines[24] = "the café".encode("latin-1")
    (tmp_path / "raw" / "train.en").write_bytes(b"\n".join(lines))
    with pytest.raises(DataError) as err:
        run(train, valid, tmp_path / "data")
    assert str(err.value) == (
        f"{tmp_path / 'raw' / 'train.en'}:25: invalid UTF-8 (byte 0xe9 at column 8) "
        "(--skip-bad drops such pairs)"
    )
    assert not (tmp_path / "data").exists()  # nothing written, let alone marked complete
    summary = run(train, valid, tmp_path / "data", skip_bad=True)
    assert (summary.splits[0].drops.bad, summary.splits[0].pairs_kept) == (1, 39)
    assert "1 undecodable (skipped) (of 40)" in summary.to_text()
    assert decoded(tmp_path / "data")[24] == (SRC[25], TGT[25])


def test_full_disk_leaves_the_folder_incomplete_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    train = write_pair(tmp_path / "raw", "train", SRC, TGT)
    valid = write_pair(tmp_path / "raw", "valid", SRC[:3], TGT[:3])
    out = tmp_path / "data"
    run(train, valid, out)  # a complete folder, then a rerun that runs out of space
    calls = 0

    def full_after_a_few(file: Any, array: np.ndarray) -> None:
        nonlocal calls
        calls += 1
        if calls > 5:
            raise OSError(errno.ENOSPC, "No space left on device", file.name)
        file.write(np.ascontiguousarray(array).data)

    monkeypatch.setattr("nmt_cli.encoded.write_array", full_after_a_few)
    with pytest.raises(DataError) as err:
        run(train, valid, out)
    message = str(err.value)
    assert message.startswith(f"{out}: disk full (") and "No space left on device" in message
    assert "incomplete (not marked complete)" in message and "\n" not in message
    with pytest.raises(DataError, match="incomplete data folder"):
        load_meta(out)


@pytest.mark.parametrize("langs", [("pt", "en"), ("src", "ref")])
def test_outputs_never_overwrite_the_corpus(tmp_path: Path, langs: tuple[str, str]) -> None:
    """--out is the corpus folder: encoded files cannot be named like train.pt; a valid.ref
    that is the input (--tgt ref) is refused, not overwritten."""
    raw = tmp_path / "raw"
    raw.mkdir()
    for name, n in (("train", 40), ("valid", 3)):
        for lang, lines in zip(langs, (SRC[:n], TGT[:n]), strict=True):
            (raw / f"{name}.{lang}").write_text("\n".join(lines) + "\n", encoding="utf-8")
    before = {p.name: p.read_bytes() for p in raw.iterdir()}
    args = (*langs, raw / "train", raw / "valid", raw)
    if langs[1] == "ref":
        (raw / "valid.src").unlink()  # valid.src is an output too: only valid.ref clashes
        with pytest.raises(ConfigError, match=r"valid\.ref: is an input file"):
            preprocess(*args, vocab_size=100)
        return
    preprocess(*args, vocab_size=100)
    assert all((raw / name).read_bytes() == data for name, data in before.items())
    assert len(EncodedSplit.open(raw, "train")) == 40


def test_sentencepiece_sample_is_bounded_and_seeded(tmp_path: Path) -> None:
    train = write_pair(tmp_path, "train", SRC, TGT)
    with Workers(1) as workers:
        scanned = scan([("train", [Corpus.of(train, "de", "en")])], Options(), workers)[0]
        every = sample_text(scanned, 100, 0, workers)
        assert every == (SRC, TGT)  # no more pairs than asked: all of them, in order
        some = sample_text(scanned, 10, 0, workers)
        assert len(some[0]) == 10 and some == sample_text(scanned, 10, 0, workers)
        assert some[0] != sample_text(scanned, 10, 1, workers)[0]
        assert [SRC.index(s) for s in some[0]] == sorted(SRC.index(s) for s in some[0])
        assert [TGT[SRC.index(s)] for s in some[0]] == some[1]  # pairs stay pairs


def reference_buckets(src: list[int], tgt: list[int], budget: int, seed: int | None) -> list:
    """Format 1's bucketing, a pair at a time in Python (the loop Buckets vectorizes)."""
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    n = len(src)
    order = torch.randperm(n, generator=generator) if generator else torch.arange(n)
    key = (torch.tensor(tgt)[order] + 1) * 10_000 + (torch.tensor(src)[order] + 1)
    order = order[torch.sort(key, stable=True).indices].tolist()
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i in order:
        length = max(src[i], tgt[i] + 1)
        if current and max(longest, length) * (len(current) + 1) > budget:
            batches.append(current)
            current, longest = [], 0
        current.append(i)
        longest = max(longest, length)
    batches.append(current)
    if generator is not None:
        batches = [batches[i] for i in torch.randperm(len(batches), generator=generator)]
    return batches


@pytest.mark.parametrize("seed", [None, 0, 7])
def test_bucketing_equals_the_pair_at_a_time_loop(seed: int | None) -> None:
    rng = random.Random(seed)
    for budget in (1, 37, 400, 3000):
        src = [rng.randint(1, 90) for _ in range(2000)]
        tgt = [rng.randint(0, 90) for _ in range(2000)]
        lengths = np.array(src, dtype=np.uint16), np.array(tgt, dtype=np.uint16)
        generator = None if seed is None else torch.Generator().manual_seed(seed)
        assert bucket_batches(*lengths, budget, generator) == reference_buckets(
            src, tgt, budget, seed
        )


def test_mapped_split_gives_the_batches_of_the_same_ids_in_memory(tmp_path: Path) -> None:
    train = write_pair(tmp_path / "raw", "train", SRC * 3, TGT * 3)
    run(train, write_pair(tmp_path / "raw", "valid", SRC[:3], TGT[:3]), tmp_path / "data")
    mapped = EncodedSplit.open(tmp_path / "data", "train")
    tok = Tokenizer.load(tmp_path / "data" / "spm.model")
    memory = EncodedSplit.from_ids(tok.encode_batch(SRC * 3), tok.encode_batch(TGT * 3))
    a, b = TrainBatches(mapped, 60, 40, seed=3), TrainBatches(memory, 60, 40, seed=3)
    for _ in range(25):  # over an epoch boundary
        x, y = next(a.groups(1))[0], next(b.groups(1))[0]
        assert torch.equal(x.ids, y.ids) and torch.equal(x.src, y.src)
        assert torch.equal(x.tgt_out, y.tgt_out)


def test_small_corpus_trains_the_tokenizer_as_before(tmp_path: Path) -> None:
    """Under --spm-sample, sentencepiece sees every source line, then every target line."""
    train = write_pair(tmp_path / "raw", "train", SRC, TGT)
    run(train, write_pair(tmp_path / "raw", "valid", SRC[:3], TGT[:3]), tmp_path / "data")
    before = train_sentencepiece(SRC + TGT, 100, "unigram")
    assert (tmp_path / "data" / "spm.model").read_bytes() == before
