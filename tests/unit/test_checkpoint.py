"""Checkpoints: the typed file format, atomic writes, last-k / best-k bookkeeping, the manifest,
and clear one-line errors on bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nmt_cli.checkpoint import (
    FORMAT_VERSION,
    Checkpoint,
    TrainingState,
    load_checkpoint,
    metric_from_score,
    resolve_checkpoint,
    save_checkpoint,
    score_from_metric,
)
from nmt_cli.checkpoint_manager import CheckpointManager, Manifest, Ranked, read_manifest
from nmt_cli.errors import CheckpointError

VOCAB = {"src_spm": b"\x00bytes", "tgt_spm": b"\x00other", "joint": False, "src_lang": "de"}


def state(value: float, step: int = 0) -> Checkpoint:
    """A translation-only checkpoint whose one weight holds `value`."""
    return Checkpoint(
        config={"model": {"cell": "gru"}},
        vocab=VOCAB,
        model={"w": torch.full((3,), value)},
        step=step,
    )


def training_state() -> TrainingState:
    return TrainingState(
        optimizer={"state": {0: {"exp_avg": torch.ones(3)}}, "param_groups": [{"lr": 0.5}]},
        schedule={"plateau_lr": 0.5, "best": 3.0, "bad_validations": 1},
        sampler={"epoch": 2, "index": 7},
        best_score=-12.5,
        bad_validations=1,
        elapsed=61.5,
        train_seconds=40.25,
        train_tokens=12345,
        torch_rng=torch.get_rng_state(),
    )


def raw(**changes: object) -> dict:
    """An on-disk checkpoint dict, as another tool or version might have written it."""
    return {
        "format_version": FORMAT_VERSION,
        "config": {},
        "vocab": VOCAB,
        "model": {"w": torch.zeros(3)},
        "step": 4,
        **changes,
    }


def test_manager_keeps_last_and_best(tmp_path: Path) -> None:
    manager = CheckpointManager(tmp_path, keep_last=2, keep_best=2)
    scores = {1: 10.0, 2: 30.0, 3: 20.0, 4: 5.0, 5: 6.0}
    for step, score in scores.items():
        manager.save(state(step, step), step, score)
    names = sorted(p.name for p in (tmp_path / "checkpoints").glob("step-*.pt"))
    assert names == ["step-2.pt", "step-3.pt", "step-4.pt", "step-5.pt"]
    best = load_checkpoint(tmp_path / "checkpoints" / "best.pt")
    last = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert best.model["w"][0] == 2 and best.score == 30.0 and best.step == 2
    assert last.model["w"][0] == 5
    assert not (tmp_path / "checkpoints" / "best.pt").is_symlink()
    manifest = json.loads((tmp_path / "checkpoints" / "manifest.json").read_text())
    assert [b["step"] for b in manifest["best"]] == [2, 3]
    # a new manager picks up the manifest: best stays best
    again = CheckpointManager(tmp_path, keep_last=2, keep_best=2)
    again.save(state(6, 6), 6, 1.0)
    assert load_checkpoint(tmp_path / "checkpoints" / "best.pt").model["w"][0] == 2
    assert not list((tmp_path / "checkpoints").glob(".*tmp"))


def test_manager_refuses_a_checkpoint_of_another_step(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="step 3 saved as step 4"):
        CheckpointManager(tmp_path, 2, 2).save(state(1, 3), 4, None)


@pytest.mark.parametrize("with_training", [True, False])
def test_round_trip(tmp_path: Path, with_training: bool) -> None:
    """Every field comes back equal; a translation-only checkpoint stays one."""
    training = training_state() if with_training else None
    ckpt = Checkpoint(
        config={"model": {"cell": "lstm"}, "train": {"stop_metric": "ppl"}},
        vocab=VOCAB,
        model={"w": torch.arange(4.0), "b": torch.ones(2, dtype=torch.bfloat16)},
        step=30,
        training=training,
        score=-12.5,
        averaged_from=None if with_training else ["a.pt", "b.pt"],
    )
    save_checkpoint(ckpt, tmp_path / "a.pt")
    loaded = load_checkpoint(tmp_path / "a.pt")
    assert (loaded.config, loaded.vocab, loaded.step, loaded.score, loaded.averaged_from) == (
        ckpt.config,
        ckpt.vocab,
        ckpt.step,
        ckpt.score,
        ckpt.averaged_from,
    )
    assert loaded.model.keys() == ckpt.model.keys()
    for name, tensor in ckpt.model.items():
        assert torch.equal(loaded.model[name], tensor) and loaded.model[name].dtype == tensor.dtype
    if training is None:
        assert loaded.training is None
        return
    got = loaded.training
    assert got is not None
    assert torch.equal(got.torch_rng, torch.get_rng_state()) and got.cuda_rng is None
    assert torch.equal(got.optimizer["state"][0]["exp_avg"], torch.ones(3))
    assert (got.schedule, got.sampler) == (training.schedule, training.sampler)
    assert (got.best_score, got.bad_validations, got.elapsed) == (-12.5, 1, 61.5)
    assert (got.train_seconds, got.train_tokens) == (40.25, 12345)


@pytest.mark.parametrize(("metric", "value", "score"), [("bleu", 31.5, 31.5), ("ppl", 7.25, -7.25)])
def test_scores_are_higher_is_better(metric: str, value: float, score: float) -> None:
    assert score_from_metric(value, metric) == score
    assert metric_from_score(score, metric) == value


def test_truncated_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "a.pt"
    save_checkpoint(state(1), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a valid nmt checkpoint"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"hello, not a checkpoint", "not a valid nmt checkpoint"),
        (None, "not an nmt checkpoint"),
    ],
)
def test_foreign_files_are_rejected(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "x.pt"
    if content is None:
        torch.save({"weights": torch.zeros(2)}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


@pytest.mark.parametrize(
    ("version", "why"), [(999, "it was written by a newer nmt"), (0, "it cannot be converted")]
)
def test_other_format_version_is_one_line_naming_both(
    tmp_path: Path, version: int, why: str
) -> None:
    path = tmp_path / "v.pt"
    torch.save(raw(format_version=version), path)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    assert str(caught.value) == (
        f"{path}: checkpoint format {version}, this nmt reads format {FORMAT_VERSION}; {why}"
    )


@pytest.mark.parametrize(
    ("drop", "name"),
    [
        ("config", "config"),
        ("model", "model"),
        ("step", "step"),
        ("vocab", "vocab"),
        ("vocab.tgt_spm", "vocab.tgt_spm"),
        ("sampler", "sampler"),  # a training checkpoint: all of its training state
        ("rng.torch", "rng.torch"),
    ],
)
def test_missing_key_is_one_line(tmp_path: Path, drop: str, name: str) -> None:
    state = raw(
        optimizer={},
        schedule={},
        sampler={},
        best_score=None,
        bad_validations=0,
        elapsed=1.0,
        train_seconds=1.0,
        train_tokens=3,
        rng={"torch": torch.get_rng_state(), "cuda": None},
    )
    complete = tmp_path / "complete.pt"
    torch.save(state, complete)
    assert load_checkpoint(complete).training is not None
    outer, _, inner = drop.partition(".")
    if inner:
        state[outer] = {k: v for k, v in state[outer].items() if k != inner}
    else:
        del state[outer]
    path = tmp_path / "x.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    assert str(caught.value) == f"{path}: incomplete checkpoint (no {name})"


def test_a_wrong_kind_of_value_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "x.pt"
    torch.save(raw(step="30"), path)
    with pytest.raises(CheckpointError, match=r"x\.pt: damaged checkpoint \(step is a str\)$"):
        load_checkpoint(path)


def test_pickled_code_is_not_executed(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"format_version": 1, "payload": Path("/etc")}, path)  # an arbitrary class
    with pytest.raises(CheckpointError, match="not a valid nmt checkpoint"):
        load_checkpoint(path)


def test_resolve_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"no best\.pt"):
        resolve_checkpoint(tmp_path, "best")
    with pytest.raises(CheckpointError, match="no such run folder or checkpoint"):
        resolve_checkpoint(tmp_path / "nope.pt")


def test_manifest_round_trip(tmp_path: Path) -> None:
    manifest = Manifest(("step-2.pt", "step-3.pt"), (Ranked("step-2.pt", -7.5, 2),))
    path = tmp_path / "manifest.json"
    path.write_text(manifest.to_json())
    assert read_manifest(path) == manifest
    assert manifest.kept() == {"step-2.pt", "step-3.pt"}
    assert read_manifest(tmp_path / "none.json") is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "Expecting value"),
        ('{"last": [', "Expecting value"),
        (b"\xff\xfe", "can't decode"),
        ("[]", "not a JSON object"),
        ('{"best": []}', '"last" is not a list'),
        ('{"last": "step-1.pt", "best": []}', '"last" is not a list'),
        ('{"last": [], "best": [{"file": "a.pt", "step": 3}]}', "bad or missing 'score'"),
        ('{"last": [], "best": [{"file": "a.pt", "score": "x", "step": 3}]}', "bad or missing"),
        ('{"last": [3], "best": []}', "non-name"),
    ],
)
def test_corrupt_manifest_is_one_line(tmp_path: Path, text: str | bytes, reason: str) -> None:
    path = tmp_path / "manifest.json"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    with pytest.raises(CheckpointError) as caught:
        read_manifest(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: unreadable manifest (") and reason in message
    assert "\n" not in message


def test_every_manifest_reader_reports_a_corrupt_manifest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The manager warns and starts a new one; `nmt info` and `nmt average` stop, in one line."""
    from nmt_cli.average import run_checkpoints
    from nmt_cli.info import list_checkpoints

    manager = CheckpointManager(tmp_path, keep_last=2, keep_best=2)
    manager.save(state(1, 10), 10, 1.0)
    path = tmp_path / "checkpoints" / "manifest.json"
    path.write_text('{"last": "step-10.pt", "best": []}')
    assert CheckpointManager(tmp_path, 2, 2).manifest == Manifest()
    assert f"{path}: unreadable manifest" in caplog.text
    for read in (
        lambda: list_checkpoints(path.parent),
        lambda: run_checkpoints(tmp_path, "last", 1),
    ):
        with pytest.raises(
            CheckpointError, match=r"manifest\.json: unreadable manifest \(\"last\" is not"
        ):
            read()
