"""User mistakes get one clear line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import nmt

pytestmark = pytest.mark.e2e


def assert_one_line_error(result, *fragments: str) -> None:  # type: ignore[no-untyped-def]
    assert result.returncode != 0
    err = result.stderr if isinstance(result.stderr, str) else result.stderr.decode()
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith("nmt: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def write_pair(folder: Path, name: str, src: bytes, tgt: bytes) -> Path:
    (folder / f"{name}.de").write_bytes(src)
    (folder / f"{name}.en").write_bytes(tgt)
    return folder / name


def preprocess(prefix: Path, out: Path):  # type: ignore[no-untyped-def]
    return nmt(
        "preprocess", "--src", "de", "--tgt", "en", "--train", str(prefix), "--valid", str(prefix),
        "--out", str(out), "--vocab-size", "50", check=False,
    )  # fmt: skip


def test_preprocess_line_count_mismatch(tmp_path: Path) -> None:
    prefix = write_pair(tmp_path, "train", b"a b\nc d\ne\n", b"x\ny\n")
    assert_one_line_error(
        preprocess(prefix, tmp_path / "out"), "train.de has 3 lines", "train.en has 2"
    )


def test_preprocess_invalid_utf8_names_file_and_line(tmp_path: Path) -> None:
    prefix = write_pair(tmp_path, "train", b"gut\nschl\xf6n\n", b"good\nbad\n")
    assert_one_line_error(preprocess(prefix, tmp_path / "out"), "train.de:2", "invalid UTF-8")


def test_preprocess_missing_file(tmp_path: Path) -> None:
    assert_one_line_error(preprocess(tmp_path / "nope", tmp_path / "out"), "nope.de")


def test_train_unknown_key_and_missing_data(run_dir: Path, data_dir: Path, tmp_path: Path) -> None:
    result = nmt(
        "train",
        str(data_dir),
        "--out",
        str(tmp_path / "r"),
        "--set",
        "train.max_step=5",
        check=False,
    )
    assert_one_line_error(result, "train.max_step", "did you mean 'train.max_steps'")
    result = nmt("train", str(tmp_path / "missing"), "--out", str(tmp_path / "r"), check=False)
    assert_one_line_error(result, "missing")
    result = nmt("train", str(data_dir), "--out", str(run_dir), check=False)
    assert_one_line_error(result, "already has checkpoints", "--resume")
    result = nmt("train", str(data_dir), "--out", str(tmp_path / "fresh"), "--resume", check=False)
    assert_one_line_error(result, "nothing to resume")


def test_resume_with_another_model_is_refused(
    run_dir: Path, data_dir: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "copy"
    copy.mkdir()
    for item in ("config.yaml",):
        (copy / item).write_bytes((run_dir / item).read_bytes())
    (copy / "checkpoints").mkdir()
    (copy / "checkpoints" / "last.pt").write_bytes(
        (run_dir / "checkpoints" / "last.pt").read_bytes()
    )
    result = nmt(
        "train",
        str(data_dir),
        "--out",
        str(copy),
        "--resume",
        "--set",
        "model.cell=gru",
        check=False,
    )
    assert_one_line_error(result, "model.cell", "'gru'", "'lstm'")


def test_translate_bad_checkpoints(tmp_path: Path) -> None:
    assert_one_line_error(
        nmt("translate", str(tmp_path / "none.pt"), input="x\n", check=False), "none.pt"
    )
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00" * 100)
    assert_one_line_error(
        nmt("translate", str(junk), input="x\n", check=False), "junk.pt", "not a valid"
    )


def test_translate_invalid_utf8_still_one_line_each(run_dir: Path) -> None:
    result = nmt("translate", str(run_dir), "--beam", "1", input=b"3+4\n\xff\xfe9+1\n5+5\n")
    assert result.returncode == 0
    assert len(result.stdout.decode().splitlines()) == 3
    assert b"line 2: invalid UTF-8" in result.stderr


def test_eval_mismatched_lengths(tmp_path: Path) -> None:
    (tmp_path / "ref").write_text("a\nb\n")
    (tmp_path / "hyp").write_text("a\n")
    result = nmt("eval", "--ref", str(tmp_path / "ref"), str(tmp_path / "hyp"), check=False)
    assert_one_line_error(result, "1 lines", "2")
    result = nmt(
        "eval", "--ref", str(tmp_path / "ref"), "--metrics", "blue", input="a\nb\n", check=False
    )
    assert_one_line_error(result, "blue")
