"""`nmt info`: parameter counts with tied weights, the manifest listing, checkpoint checks."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest
import torch

from nmt_cli.checkpoint import Checkpoint, TrainingState, load_checkpoint, save_checkpoint
from nmt_cli.config import Config, ModelConfig, TrainConfig
from nmt_cli.errors import CheckpointError
from nmt_cli.info import count_parameters, list_checkpoints, run_info
from nmt_cli.model import build_model
from nmt_cli.tokenizer import train_sentencepiece

SMALL = ModelConfig(emb_size=16, enc_hidden=24, dec_hidden=24, attn_hidden=12)
TEXTS = [f"sentence number {i} about {w}" for i in range(30) for w in ("cats", "dogs")]


@pytest.mark.parametrize(
    "changes, shared",
    [
        ({}, []),
        ({"tie_output": True}, ["generator.weight = decoder.embedding.weight"]),
        ({"share_embeddings": True}, ["decoder.embedding.weight = encoder.embedding.weight"]),
        (
            {"share_embeddings": True, "tie_output": True},
            [
                "decoder.embedding.weight = encoder.embedding.weight",
                "generator.weight = encoder.embedding.weight",
            ],
        ),
    ],
)
def test_tied_parameters_count_once(changes: dict, shared: list[str]) -> None:
    model = build_model(dataclasses.replace(SMALL, **changes), 40, 40, joint_vocab=True)
    counts, found = count_parameters(model)
    assert counts["total"] == sum(p.numel() for p in model.parameters())  # unique tensors
    assert counts["total"] == sum(counts[m] for m in ("encoder", "decoder", "bridge", "generator"))
    assert found == shared
    if changes.get("tie_output"):
        assert counts["generator"] == 40  # only the bias is its own


def write_run(root: Path, stop_metric: str = "bleu") -> Path:
    """A run folder with two step checkpoints of an untrained model (no training needed)."""
    spm = train_sentencepiece(TEXTS, 30)
    config = Config(model=SMALL, train=TrainConfig(stop_metric=stop_metric))
    model = build_model(config.model, 30, 30, joint_vocab=True)
    folder = root / "checkpoints"
    folder.mkdir(parents=True)
    vocab = {"src_spm": spm, "tgt_spm": spm, "joint": True, "src_lang": "de", "tgt_lang": "en"}
    for step, score in ((10, -9.5), (20, -7.25)):
        training = TrainingState(
            optimizer={},
            schedule={},
            sampler={},
            best_score=score,
            bad_validations=0,
            elapsed=90.0,
            train_seconds=60.0,
            train_tokens=1000,
            torch_rng=torch.get_rng_state(),
        )
        ckpt = Checkpoint(config.to_dict(), vocab, model.state_dict(), step, training, score)
        save_checkpoint(ckpt, folder / f"step-{step}.pt")
    os.link(folder / "step-20.pt", folder / "last.pt")
    os.link(folder / "step-20.pt", folder / "best.pt")
    manifest = {
        "last": ["step-10.pt", "step-20.pt"],
        "best": [{"file": "step-20.pt", "score": -7.25, "step": 20},
                 {"file": "step-10.pt", "score": -9.5, "step": 10}],
    }  # fmt: skip
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return root


def test_run_folder_info(tmp_path: Path) -> None:
    info = run_info(write_run(tmp_path / "run", stop_metric="ppl"))
    assert (info.step, info.minutes, info.stop_metric, info.best_score) == (20, 1.5, "ppl", 7.25)
    assert (info.src_vocab, info.joint_vocab, info.src_lang) == (30, True, "de")
    assert info.checkpoints is not None
    assert [(c.file, c.step, c.score, c.best_rank) for c in info.checkpoints] == [
        ("step-10.pt", 10, 9.5, 2),
        ("step-20.pt", 20, 7.25, 1),
    ]
    assert info.best_file == info.last_file == "step-20.pt"
    assert all(c.bytes and c.bytes > 1000 for c in info.checkpoints)
    text = info.to_text()
    assert "best valid   ppl 7.25" in text and "step-20.pt" in text and "best.pt" in text
    assert "cell: lstm" in text  # the config, as YAML
    assert json.loads(info.to_json())["parameters"]["total"] == info.parameters["total"]


def test_single_checkpoint_info_lists_no_folder(tmp_path: Path) -> None:
    info = run_info(write_run(tmp_path / "run") / "checkpoints" / "step-10.pt")
    assert info.step == 10 and info.checkpoints is None and info.best_score == -9.5
    assert "checkpoints on disk" not in info.to_text()


def test_missing_manifest_file_is_reported(tmp_path: Path) -> None:
    folder = write_run(tmp_path / "run") / "checkpoints"
    (folder / "step-10.pt").unlink()
    listed = list_checkpoints(folder)
    assert (listed[0].file, listed[0].bytes) == ("step-10.pt", None)
    assert "missing" in run_info(tmp_path / "run").to_text()


def test_weights_that_do_not_match_the_config_are_an_error(tmp_path: Path) -> None:
    path = write_run(tmp_path / "run") / "checkpoints" / "step-10.pt"
    ckpt = load_checkpoint(path)
    bigger = {**ckpt.model, "generator.bias": torch.zeros(31)}
    save_checkpoint(dataclasses.replace(ckpt, model=bigger), path)
    with pytest.raises(CheckpointError, match="do not match its config"):
        run_info(path)
    fewer = {k: v for k, v in ckpt.model.items() if k != "generator.bias"}
    save_checkpoint(dataclasses.replace(ckpt, model=fewer), path)
    with pytest.raises(CheckpointError, match="do not match its config"):
        run_info(path)


def test_averaged_checkpoint_info(tmp_path: Path) -> None:
    """A translation-only checkpoint (no training state): no time or best score to show."""
    path = write_run(tmp_path / "run") / "checkpoints" / "step-20.pt"
    ckpt = load_checkpoint(path)
    out = tmp_path / "avg.pt"
    save_checkpoint(dataclasses.replace(ckpt, training=None, averaged_from=[str(path)]), out)
    info = run_info(out)
    assert (info.step, info.minutes, info.best_score) == (20, None, None)
    assert "best valid   BLEU n/a" in info.to_text()
