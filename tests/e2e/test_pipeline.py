"""The real `nmt` command end to end on tiny data."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from nmt_cli.checkpoint import load_checkpoint
from nmt_cli.data import make_source_batch
from nmt_cli.tokenizer import BOS_ID, EOS_ID
from nmt_cli.translate import Translator

from .conftest import nmt

pytestmark = pytest.mark.e2e


def test_train_writes_a_complete_run_folder(run_dir: Path) -> None:
    assert (run_dir / "config.yaml").is_file() and (run_dir / "spm.model").is_file()
    # the first validation is the best so far; the mark follows the stop metric (BLEU here)
    assert re.search(
        r"validation at step 30: ppl [\d.]+ BLEU [\d.]+ \(best\)",
        (run_dir / "train.log").read_text(),
    )
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    # a training row every log_every (10) steps, a validation row after each validation
    assert [(r["step"], "valid_bleu" in r) for r in rows] == [
        (10, False), (20, False), (30, False), (30, True), (40, False), (50, False),
        (60, False), (60, True),
    ]  # fmt: skip
    assert {"step", "train_loss", "lr", "tokens_per_s", "minutes"} == set(rows[0])
    assert all(isinstance(r["train_loss"], float) for r in rows)
    valid = [r for r in rows if "valid_bleu" in r]
    assert {"train_loss", "valid_ppl", "valid_bleu", "lr", "tokens_per_s", "minutes"} <= set(
        valid[0]
    )
    assert valid[1]["valid_ppl"] < valid[0]["valid_ppl"]  # it learns
    checkpoints = run_dir / "checkpoints"
    assert {"best.pt", "last.pt", "step-30.pt", "step-60.pt", "manifest.json"} <= {
        p.name for p in checkpoints.iterdir()
    }
    state = load_checkpoint(checkpoints / "last.pt")
    assert state.step == 60 and isinstance(state.vocab["src_spm"], bytes)
    assert state.training is not None and state.training.sampler


def test_translate_keeps_one_line_per_input_line(run_dir: Path, corpus: Path) -> None:
    lines = ["3+4", "", "   ", "March 3, 1998", "12 + 7"]
    out = nmt("translate", str(run_dir), "--beam", "2", input="\n".join(lines) + "\n").stdout
    assert len(out.splitlines()) == len(lines)
    assert out.splitlines()[1] == "" and out.splitlines()[2] == ""
    # no trailing newline on the last input line: still one output line
    assert len(nmt("translate", str(run_dir), input="3+4\n5+6").stdout.splitlines()) == 2


def test_translate_file_io_and_a_single_checkpoint_file(
    run_dir: Path, corpus: Path, tmp_path: Path
) -> None:
    copied = tmp_path / "model.pt"
    copied.write_bytes((run_dir / "checkpoints" / "best.pt").read_bytes())
    source = corpus / "test.src"
    hyp = tmp_path / "hyp.txt"
    nmt("translate", str(copied), "--input", str(source), "--output", str(hyp), "--beam", "1")
    from_run = nmt("translate", str(run_dir), "--beam", "1", input=source.read_text()).stdout
    assert hyp.read_text() == from_run
    assert len(from_run.splitlines()) == len(source.read_text().splitlines())


def test_n_best_format(run_dir: Path) -> None:
    out = nmt("translate", str(run_dir), "--n-best", "3", "--beam", "3", input="3+4\n\n").stdout
    rows = [line.split("\t") for line in out.splitlines()]
    assert len(rows) == 6 and all(len(r) == 3 for r in rows)
    assert [r[0] for r in rows] == ["1", "1", "1", "2", "2", "2"]
    scores = [float(r[1]) for r in rows[:3]]
    assert scores == sorted(scores, reverse=True)


def test_eval_matches_sacrebleu_and_reads_stdin(
    run_dir: Path, corpus: Path, tmp_path: Path
) -> None:
    hyp = tmp_path / "hyp.txt"
    nmt("translate", str(run_dir), "--input", str(corpus / "test.src"), "--output", str(hyp))
    ref = str(corpus / "test.tgt")
    ours = json.loads(
        nmt("eval", "--ref", ref, str(hyp), "--json", "--metrics", "bleu,chrf").stdout
    )
    sacrebleu = Path(sys.executable).parent / "sacrebleu"
    theirs = subprocess.run(
        [str(sacrebleu), ref, "-i", str(hyp), "-b", "-w", "4"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert f"{ours['bleu']['score']:.4f}" == theirs.stdout.strip()
    piped = nmt("evaluate", "--ref", ref, input=hyp.read_text()).stdout
    assert piped.startswith("BLEU = ") and "signature: nrefs:1|case:mixed" in piped


def test_translate_closed_pipe_ends_quietly(run_dir: Path, corpus: Path) -> None:
    lines = (corpus / "test.src").read_text() * 20
    shell = f"{sys.executable} -m nmt_cli translate {run_dir} --beam 1 --batch-size 4 | head -1"
    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", shell], input=lines, capture_output=True, text=True
    )
    assert result.stdout.count("\n") == 1
    assert "Traceback" not in result.stderr and "Error" not in result.stderr


def test_resume_continues_exactly(data_dir: Path, config_file: Path, tmp_path: Path) -> None:
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    common = ["--config", str(config_file), "--set", "train.valid_every=20", "--seed", "5"]
    nmt("train", str(data_dir), "--out", str(straight), *common, "--set", "train.max_steps=40")
    nmt("train", str(data_dir), "--out", str(resumed), *common, "--set", "train.max_steps=20")
    nmt("train", str(data_dir), "--out", str(resumed), "--resume", "--set", "train.max_steps=40")
    a = load_checkpoint(straight / "checkpoints" / "last.pt")
    b = load_checkpoint(resumed / "checkpoints" / "last.pt")
    assert a.step == b.step == 40
    for name, tensor in a.model.items():
        assert torch.equal(tensor, b.model[name]), name  # bitwise on CPU
    rows_a = (straight / "metrics.jsonl").read_text().splitlines()
    rows_b = (resumed / "metrics.jsonl").read_text().splitlines()
    assert len(rows_a) == len(rows_b)
    for a_row, b_row in zip(rows_a, rows_b, strict=True):
        a_row, b_row = json.loads(a_row), json.loads(b_row)
        assert (a_row["step"], a_row["train_loss"], a_row.get("valid_ppl")) == (
            b_row["step"], b_row["train_loss"], b_row.get("valid_ppl")
        )  # fmt: skip


def test_save_load_gives_identical_translations(run_dir: Path, corpus: Path) -> None:
    lines = (corpus / "test.src").read_text().splitlines()[:10]
    first = Translator.load(run_dir, "last").translate(lines, beam=3)
    second = Translator.load(run_dir / "checkpoints" / "last.pt").translate(lines, beam=3)
    assert first == second


def test_average_of_one_checkpoint_translates_like_it(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "avg.pt"
    nmt("average", str(run_dir / "checkpoints" / "step-60.pt"), "--out", str(out))
    source = "3+4\nMarch 3, 1998\n"
    assert (
        nmt("translate", str(out), input=source).stdout
        == nmt("translate", str(run_dir), "--checkpoint", "step-60.pt", input=source).stdout
    )
    nmt("average", str(run_dir), "--last", "2", "--out", str(tmp_path / "avg2.pt"))
    avg = load_checkpoint(tmp_path / "avg2.pt")
    a = load_checkpoint(run_dir / "checkpoints" / "step-30.pt").model
    b = load_checkpoint(run_dir / "checkpoints" / "step-60.pt").model
    name = "generator.weight"
    torch.testing.assert_close(avg.model[name], (a[name] + b[name]) / 2)
    assert avg.training is None and avg.step == 60 and avg.averaged_from is not None


def n_best_json(run_dir: Path, *args: str, source: str) -> list[list[tuple[str, float]]]:
    out = nmt("translate", str(run_dir), "--json", "--n-best", "3", *args, input=source).stdout
    records = [json.loads(line)["n_best"] for line in out.splitlines()]
    return [[(h["translation"], h["score"]) for h in hyps] for hyps in records]


def test_ensemble_of_a_model_with_itself_equals_the_model(run_dir: Path, corpus: Path) -> None:
    source = "3+4\n\nMarch 3, 1998\n12 + 7\n" + (corpus / "test.src").read_text()
    single = n_best_json(run_dir, "--checkpoint", "step-60.pt", source=source)
    twice = n_best_json(
        run_dir, "--checkpoint", "step-60.pt", "--checkpoint", "step-60.pt", source=source
    )
    assert [[t for t, _ in hyps] for hyps in twice] == [[t for t, _ in hyps] for hyps in single]
    for hyps_twice, hyps_single in zip(twice, single, strict=True):
        for (_, a), (_, b) in zip(hyps_twice, hyps_single, strict=True):
            assert abs(a - b) <= 1e-5, (hyps_twice, hyps_single)


def greedy_ensemble(
    members: list[Any], src_ids: list[int], max_len: int
) -> tuple[list[int], float]:
    """The reference: greedy decoding of one sentence on the mean of the members'
    next-token probabilities, eos forced after max_len tokens. Returns (ids, log-prob)."""
    src, mask, lengths = make_source_batch([torch.tensor(src_ids)])
    states = [m.encode(src, mask, lengths) for m in members]
    prev, tokens, total = torch.tensor([BOS_ID]), [], 0.0
    with torch.inference_mode():
        for t in range(max_len + 1):
            steps = [m.decode_step(prev, s) for m, s in zip(members, states, strict=True)]
            states = [s for _, s, _ in steps]
            mean = torch.stack([lp[0].double().exp() for lp, _, _ in steps]).mean(0)  # V
            best = EOS_ID if t >= max_len else int(mean.argmax())
            total += float(mean[best].log())
            if best == EOS_ID:
                return tokens, total
            tokens.append(best)
            prev = torch.tensor([best])
    raise AssertionError("unreachable: eos is forced at max_len")


def test_mixed_checkpoint_ensemble_decodes_the_mean_of_its_members(
    run_dir: Path, corpus: Path
) -> None:
    lines = ["3+4", "March 3, 1998", *(corpus / "test.src").read_text().splitlines()[:12]]
    out = nmt(
        "translate", str(run_dir), "--checkpoint", "step-30.pt", "--checkpoint", "last",
        "--beam", "1", "--precision", "fp32", "--json", input="\n".join(lines) + "\n",
    ).stdout.splitlines()  # fmt: skip
    early, late = Translator.load(run_dir, "step-30.pt"), Translator.load(run_dir, "last")
    decode = early.config.decode
    for line, record in zip(lines, map(json.loads, out), strict=True):
        src_ids = early.src_tok.encode(line)
        max_len = int(len(src_ids) * decode.max_len_a + decode.max_len_b)
        ids, log_prob = greedy_ensemble([early.model, late.model], src_ids, max_len)
        assert record["translation"] == early.tgt_tok.decode(ids), line
        assert abs(record["score"] - log_prob) <= 1e-4, (line, record["score"], log_prob)
    alone = nmt("translate", str(run_dir), "--checkpoint", "last", "--beam", "1", "--json",
                input="\n".join(lines) + "\n").stdout.splitlines()  # fmt: skip
    assert [json.loads(r)["score"] for r in alone] != [json.loads(r)["score"] for r in out]
