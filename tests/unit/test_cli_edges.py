"""The command line without sharp edges: plain help, one error style, hints for common mistakes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer

from nmt_cli.app import run
from nmt_cli.checkpoint import resolve_checkpoint
from nmt_cli.cli import app
from nmt_cli.corpus import META_FILE
from nmt_cli.errors import CheckpointError, ConfigError
from nmt_cli.hints import DATA_FOLDER_MARK, check_prefix

COMMANDS = sorted(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
# Typer's labels: <str>, <int>, <bool>, <path>, <list[str]>, <list[Path]>, ...
TYPE_LABEL = re.compile(r"<(str|int|float|bool|path|list\[\w+\])>", re.IGNORECASE)


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_:
        run(args)
    out, err = capsys.readouterr()
    return int(exit_.value.code or 0), out, err


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_has_no_type_labels_and_every_default_in_full(
    command: str | None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = run_cli([command, "-h"] if command else ["-h"], capsys)
    assert code == 0
    usage = out.splitlines()[0]
    assert usage.startswith("Usage: nmt") and "{" not in usage and "<" not in usage, usage
    assert not TYPE_LABEL.search(out), TYPE_LABEL.search(out)
    assert "…" not in out and "╭" not in out
    assert max(len(line) for line in out.splitlines()) <= 80
    if command:
        flat = " ".join(out.split())
        for param in typer.main.get_command(app).commands[command].params:  # type: ignore[attr-defined]
            if isinstance(param.default, (int, str)) and not isinstance(param.default, bool):
                assert f"[default: {param.default}]" in flat, (command, param.name)


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["translate", "RUN", "file.de"], ["unexpected extra argument", "-i file.de"]),
        (["translate", "--bem", "3", "RUN"], ["--bem", "--beam", "nmt translate -h"]),
        (["translate"], ["Missing argument"]),
        (["tranlsate"], ["No such command"]),
        (["train", "data", "--out", "r", "--seed", "x"], ["--seed", "integer"]),
    ],
)
def test_parsing_errors_are_one_plain_line(
    args: list[str], fragments: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(args, capsys)
    assert code == 2 and not out
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("nmt: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def test_nmt_alone_shows_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli([], capsys)
    assert code == 2 and err.startswith("Usage: nmt")


def test_a_prefix_given_as_a_file_says_the_flag_takes_a_prefix(tmp_path: Path) -> None:
    for lang in ("de", "en"):
        (tmp_path / f"train.{lang}").write_text("x\n")
    check_prefix("train", tmp_path / "train", ("de", "en"))  # the right way: no error
    with pytest.raises(ConfigError, match=r"--train .*train\.de: the flag takes a prefix") as e:
        check_prefix("train", tmp_path / "train.de", ("de", "en"))
    assert f"--train {tmp_path / 'train'} reads" in str(e.value)


def test_a_data_folder_or_a_checkpoint_typo_is_named(tmp_path: Path) -> None:
    assert DATA_FOLDER_MARK == META_FILE  # the file every data folder has
    data = tmp_path / "data"
    data.mkdir()
    (data / META_FILE).write_text("{}")
    with pytest.raises(CheckpointError, match="is a data folder"):
        resolve_checkpoint(data, "best")
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    for name in ("best.pt", "last.pt", "step-100.pt"):
        (run_dir / "checkpoints" / name).write_bytes(b"")
    with pytest.raises(CheckpointError, match="did you mean 'best'"):
        resolve_checkpoint(run_dir, "bset")
    with pytest.raises(CheckpointError, match=r"did you mean 'step-100\.pt'"):
        resolve_checkpoint(run_dir, "step-10.pt")
    assert resolve_checkpoint(run_dir, "step-100.pt") == run_dir / "checkpoints" / "step-100.pt"
