"""The demo's verdict: exact match per task against the 95 % threshold, in one line, and the
exit status `make demo` ends with."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

VERDICT = Path(__file__).resolve().parents[2] / "examples" / "demo_verdict.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("demo_verdict", VERDICT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up
    spec.loader.exec_module(module)
    return module


demo_verdict = _load()

DATES = [(f"the {n}th of May, 19{n}", f"19{n}-05-{n}") for n in range(10, 30)]  # 20 dates
SUMS = [(f"{n}+1", f"{n + 1}") for n in range(1, 41)]  # 40 additions (any digits will do)


def corpus(wrong_dates: int, wrong_sums: int) -> tuple[list[str], list[str], list[str]]:
    """Sources, references and hypotheses with the first `wrong_*` hypotheses of a task wrong."""
    src, ref, hyp = [], [], []
    for pairs, wrong in ((DATES, wrong_dates), (SUMS, wrong_sums)):
        for i, (s, r) in enumerate(pairs):
            src.append(s)
            ref.append(r)
            hyp.append("0000-00-00" if i < wrong else r)
    return src, ref, hyp


@pytest.mark.parametrize(
    ("wrong_dates", "wrong_sums", "passed", "line"),
    [
        (0, 0, True, "demo: PASS, dates 100.0 %, addition 100.0 %, BLEU "),
        (1, 2, True, "demo: PASS, dates 95.0 %, addition 95.0 %, BLEU "),  # the edge passes
        (2, 0, False, "demo: FAIL, dates 90.0 %, addition 100.0 %, BLEU "),
        (0, 3, False, "demo: FAIL, dates 100.0 %, addition 92.5 %, BLEU "),
    ],
)
def test_both_tasks_must_reach_95_percent(
    wrong_dates: int, wrong_sums: int, passed: bool, line: str
) -> None:
    verdict = demo_verdict.judge(*corpus(wrong_dates, wrong_sums))
    assert verdict.passed is passed
    assert verdict.line().startswith(line)
    assert verdict.line().endswith("(each task must reach 95 %)") is not passed


def test_a_task_missing_from_the_test_set_fails() -> None:
    src, ref, hyp = corpus(0, 0)
    verdict = demo_verdict.judge(src[:20], ref[:20], hyp[:20])  # dates only
    assert not verdict.passed and "addition 0.0 %" in verdict.line()


def test_bleu_is_sacrebleus_corpus_bleu() -> None:
    import sacrebleu

    src, ref, hyp = corpus(5, 7)
    verdict = demo_verdict.judge(src, ref, hyp)
    assert verdict.bleu == pytest.approx(sacrebleu.corpus_bleu(hyp, [ref]).score)
    assert 0 < verdict.bleu < 100


def test_misaligned_files_are_refused() -> None:
    with pytest.raises(ValueError, match="3 sources, 3 references, 2 hypotheses"):
        demo_verdict.judge(["a"] * 3, ["b"] * 3, ["b"] * 2)


@pytest.mark.parametrize(("wrong_sums", "status"), [(0, 0), (10, 1)])
def test_the_script_prints_samples_and_the_verdict_last_and_exits_1_when_short(
    tmp_path: Path, wrong_sums: int, status: int
) -> None:
    paths = [tmp_path / name for name in ("test.src", "test.tgt", "test.hyp")]
    for path, lines in zip(paths, corpus(0, wrong_sums), strict=True):
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(VERDICT), *map(str, paths)], capture_output=True, text=True
    )
    assert result.returncode == status, result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1].startswith("demo: PASS" if status == 0 else "demo: FAIL")
    samples = [line for line in lines if " -> " in line and line.startswith("  ")]
    assert any("+" in s for s in samples) and any("May" in s for s in samples)  # both tasks
    if wrong_sums:
        assert any("expected" in s and "+" in s for s in samples)  # mistakes are shown
