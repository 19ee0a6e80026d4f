"""Damaged checkpoints, interrupted and failed saves, and splitting a batch (issue 5)."""

from __future__ import annotations

import errno
import os
import random
from pathlib import Path
from typing import Any

import pytest
import torch

import nmt_cli.checkpoint as checkpoint
from nmt_cli.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from nmt_cli.checkpoint_manager import CheckpointManager
from nmt_cli.data import collate
from nmt_cli.errors import CheckpointError


def state(value: float, step: int = 0, score: float | None = None) -> Checkpoint:
    return Checkpoint(
        config={},
        vocab={"src_spm": b"x" * 40, "tgt_spm": b"x" * 40, "joint": True},
        model={"w": torch.full((50,), value), "b": torch.arange(7.0)},
        step=step,
        score=score,
    )


def temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_damaged_checkpoints_never_load_silently(tmp_path: Path) -> None:
    """Any cut or flipped byte gives a CheckpointError or, where the byte is unused padding,
    exactly the saved contents: never other weights, never another exception type."""
    good = tmp_path / "good.pt"
    save_checkpoint(state(1.5), good)
    data = good.read_bytes()
    rng = random.Random(0)
    outcomes = {"error": 0, "same": 0}
    for trial in range(200):
        damaged = bytearray(data)
        if trial % 2:
            damaged = damaged[: rng.randrange(len(damaged))]
        else:
            damaged[rng.randrange(len(damaged))] ^= 1 << rng.randrange(8)
        path = tmp_path / "damaged.pt"
        path.write_bytes(bytes(damaged))
        try:
            loaded = load_checkpoint(path)
        except CheckpointError as e:
            assert "\n" not in str(e) and str(path) in str(e)
            outcomes["error"] += 1
            continue
        assert torch.equal(loaded.model["w"], torch.full((50,), 1.5))
        assert torch.equal(loaded.model["b"], torch.arange(7.0))
        assert loaded.vocab["src_spm"] == b"x" * 40
        outcomes["same"] += 1
    assert outcomes["error"] > 150, outcomes


def test_flipped_weight_byte_fails_the_crc_check(tmp_path: Path) -> None:
    path = tmp_path / "a.pt"
    save_checkpoint(state(1.0), path)
    data = bytearray(path.read_bytes())
    data[data.find(torch.full((50,), 1.0).numpy().tobytes())] ^= 0x40  # inside the weights
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="fails its CRC check"):
        load_checkpoint(path)


def test_recover_finishes_an_interrupted_save(tmp_path: Path) -> None:
    """A kill after step-N.pt is renamed into place but before last.pt and the manifest."""
    manager = CheckpointManager(tmp_path, keep_last=2, keep_best=2)
    manager.save(state(1, 10), 10, 5.0)
    manager.save(state(2, 20), 20, 7.0)
    folder = tmp_path / "checkpoints"
    save_checkpoint(state(3, 30, score=9.0), folder / "step-30.pt")  # not registered
    (folder / ".step-40.pt.123.tmp").write_bytes(b"half a checkpoint")  # a write cut short
    assert load_checkpoint(folder / "last.pt").model["w"][0] == 2

    again = CheckpointManager(tmp_path, keep_last=2, keep_best=2)
    assert temp_files(folder) == []
    recovered = again.recover()
    assert recovered is not None and recovered.model["w"][0] == 3
    assert os.path.samefile(folder / "last.pt", folder / "step-30.pt")
    assert os.path.samefile(folder / "best.pt", folder / "step-30.pt")
    assert again.manifest.last == ("step-20.pt", "step-30.pt")
    assert sorted(p.name for p in folder.glob("step-*.pt")) == [
        "step-20.pt",
        "step-30.pt",
    ]
    # nothing to finish: recover only loads
    recovered = CheckpointManager(tmp_path, 2, 2).recover()
    assert recovered is not None and recovered.model["w"][0] == 3


def test_recover_skips_a_damaged_newest_file(tmp_path: Path) -> None:
    manager = CheckpointManager(tmp_path, keep_last=3, keep_best=0)
    manager.save(state(1, 10), 10, None)
    manager.save(state(2, 20), 20, None)
    newest = tmp_path / "checkpoints" / "step-20.pt"
    newest.unlink()  # last.pt is a hard link to it: replace the step file by a damaged one
    newest.write_bytes(b"PK\x03\x04 damaged on disk")
    (tmp_path / "checkpoints" / "last.pt").unlink()
    recovered = CheckpointManager(tmp_path, keep_last=3, keep_best=0).recover()
    assert recovered is not None and recovered.model["w"][0] == 1
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt").model["w"][0] == 1


def test_recover_on_an_empty_folder(tmp_path: Path) -> None:
    assert CheckpointManager(tmp_path, 2, 2).recover() is None


def enospc(*args: Any, **kwargs: Any) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def fail_nth(real: Any, n: int) -> Any:
    calls = {"n": 0}

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == n:
            enospc()
        return real(*args, **kwargs)

    return wrapper


def half_written_save(obj: Any, f: Any) -> None:
    f.write(b"PK\x03\x04 the first bytes")
    enospc()


@pytest.mark.parametrize(
    ("target", "fault"),
    [
        ("torch.save", half_written_save),
        ("os.fsync", enospc),
        *[("os.replace", n) for n in (1, 2, 3, 4)],  # step file, last.pt, best.pt, manifest
        ("os.link", enospc),  # then the copy fallback fails too (via os.replace below)
    ],
)
def test_disk_full_while_saving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str, fault: Any
) -> None:
    """A clear one-line error; earlier checkpoints intact; no temp files; resumable."""
    manager = CheckpointManager(tmp_path, keep_last=2, keep_best=2)
    manager.save(state(1, 10), 10, 1.0)
    folder = tmp_path / "checkpoints"
    module, name = target.split(".")
    owner = checkpoint.torch if module == "torch" else checkpoint.os
    if isinstance(fault, int):
        monkeypatch.setattr(owner, name, fail_nth(getattr(owner, name), fault))
    else:
        monkeypatch.setattr(owner, name, fault)
        if target == "os.link":
            monkeypatch.setattr(checkpoint.os, "replace", fail_nth(os.replace, 2))
    with pytest.raises(CheckpointError) as caught:
        manager.save(state(2, 20), 20, 2.0)
    message = str(caught.value)
    assert "step-20.pt: cannot write checkpoint: No space left on device" in message
    assert "last.pt is the last complete checkpoint" in message and "\n" not in message
    monkeypatch.undo()
    assert temp_files(folder) == []
    assert load_checkpoint(folder / "step-10.pt").model["w"][0] == 1
    last = load_checkpoint(folder / "last.pt").model["w"][0]
    assert last in (1, 2)  # 2 only where step-20.pt itself was complete
    recovered = CheckpointManager(tmp_path, 2, 2).recover()
    assert recovered is not None
    assert load_checkpoint(folder / "last.pt").model["w"][0] == recovered.model["w"][0]
    for path in folder.glob("*.pt"):
        load_checkpoint(path)


def test_unreadable_manifest_is_rebuilt(tmp_path: Path) -> None:
    manager = CheckpointManager(tmp_path, keep_last=2, keep_best=2)
    manager.save(state(1, 10), 10, 1.0)
    (tmp_path / "checkpoints" / "manifest.json").write_text('{"last": [')
    recovered = CheckpointManager(tmp_path, 2, 2).recover()
    assert recovered is not None and recovered.model["w"][0] == 1


def test_batch_split_equals_collating_each_half() -> None:
    gen = torch.Generator().manual_seed(0)
    pairs = [
        (
            torch.randint(4, 50, (int(torch.randint(1, 9, (1,), generator=gen)),), generator=gen),
            torch.randint(4, 50, (int(torch.randint(1, 9, (1,), generator=gen)),), generator=gen),
        )
        for _ in range(7)
    ]
    pairs = [(s.int(), t.int()) for s, t in pairs]
    ids = list(range(100, 107))
    first, second = collate(pairs, ids).split()
    for half, expected in (
        (first, collate(pairs[:3], ids[:3])),
        (second, collate(pairs[3:], ids[3:])),
    ):
        assert half.n_tokens == expected.n_tokens
        for name in ("src", "src_mask", "src_lengths", "tgt_in", "tgt_out", "target_index"):
            assert torch.equal(getattr(half, name), getattr(expected, name)), name
        assert torch.equal(half.targets, expected.targets) and torch.equal(half.ids, expected.ids)
    assert first.n_tokens + second.n_tokens == collate(pairs, ids).n_tokens
