"""Speed benchmark on the peers' workload (../shared/BENCHMARKS.md), optionally side by side.

Measures, with the real `nmt` commands as a user runs them:
- training: steady target tokens/s (steps after the first 50) in fp32 and bf16, the mean
  target tokens per step (what each step trains on), peak RSS;
- translation of test_2016_flickr (1000 sentences, batch 64): whole-process seconds for beam 5
  and greedy, with BLEU, and peak RSS, at each --precision; speed-ups against fp32 whole
  process and of the translation alone (the seconds `nmt translate` reports on its last
  stderr line, from the model loaded to the last line written);
- latency: 4 lines through `nmt translate model.pt`, process start to answer;
- the machine's matrix-multiply rate (PyTorch's default kernels and oneDNN), for the FLOP
  utilization of training (against oneDNN's, the kernels nmt runs on);
- fp32 translation once more with NMT_ONEDNN=0 (PyTorch's default kernels): the unoptimized
  path's BLEU, which the fast path must equal.
With --peers it also runs OpenNMT-py's identical workload from ../shared/peers in the same
invocation and prints the ratios; --joey adds Joey NMT's training (once: it is slow). This
machine's speed drifts by up to a third within minutes, so `--rounds N` repeats training and
translation N times, ours and OpenNMT-py's interleaved in every round (training: nmt fp32,
OpenNMT-py, nmt bf16), and reports medians of the figures and the median and range of the
per-round ratios. OpenNMT-py's figures come from its own files: elapsed seconds and peak RSS
from the `/usr/bin/time -v` report `measure.sh` writes, tokens/s and tokens per step from its
log, and its decoding-only seconds from `-report_time`, beside our `nmt translate`'s own.
Writes benchmarks/results/speed.json (or --out), with the CPU's model name.

    python benchmarks/speed.py --data ../shared/data/multi30k [--steps 300] [--peers]
    python benchmarks/speed.py --translate-only --model RUN --precision fp32,bf16,int8 [--peers]
        [--rounds 3]

Translation side by side needs OpenNMT-py's 20-minute model: after `speed.py --peers`,
`bash ../shared/peers/onmt/train.sh budget 1200` trains it (continuing its 300-step run).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from quality import cpu_model, git_commit
from torch import Tensor

from nmt_cli.checkpoint import load_checkpoint
from nmt_cli.model.onednn import matmul

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "benchmarks" / "configs" / "peer-workload.yaml"
# Forward MFLOP per target token of the peer workload (BENCHMARKS.md); training = 3x forward.
MFLOP_PER_TRAINED_TOKEN = 51.0


def timed(
    cmd: list[str], stdin: str | None = None, env: dict[str, str] | None = None
) -> tuple[float, float, str]:
    """Run cmd under /usr/bin/time: (wall seconds, peak RSS MiB, stdout)."""
    seconds, rss, stdout, _ = timed_with_stderr(cmd, stdin, env)
    return seconds, rss, stdout


def timed_with_stderr(
    cmd: list[str], stdin: str | None = None, env: dict[str, str] | None = None
) -> tuple[float, float, str, str]:
    """`timed`, and the command's own stderr (without /usr/bin/time's line)."""
    fmt = "__time__ %e %M"
    result = subprocess.run(
        ["/usr/bin/time", "-f", fmt, *cmd], input=stdin, capture_output=True, text=True, env=env
    )
    if result.returncode != 0:
        sys.exit(f"speed.py: {' '.join(cmd)} failed:\n{result.stderr[-2000:]}")
    match = re.findall(r"__time__ ([\d.]+) (\d+)", result.stderr)[-1]
    stderr = result.stderr.rsplit("__time__", 1)[0]
    return float(match[0]), int(match[1]) / 1024, result.stdout, stderr


def nmt_cmd(*args: str, quiet: bool = True) -> list[str]:
    """`nmt ARGS` in this interpreter; quiet (`-q`) unless its INFO lines are wanted."""
    return [sys.executable, "-m", "nmt_cli", *(["-q"] if quiet else []), *args]


def steady_tokens_per_s(train_log: Path, after_step: int = 50) -> float:
    """Mean of the logged tokens/s windows after `after_step` (start-up excluded)."""
    rates = [
        float(m.group(2))
        for m in re.finditer(r"step (\d+) loss \S+ tok/s (\d+)", train_log.read_text())
        if int(m.group(1)) > after_step
    ]
    return sum(rates) / len(rates)


def matmul_gflops(
    dtype: torch.dtype, kernel: Callable[[Tensor, Tensor], Tensor], n: int = 2048, repeat: int = 10
) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    kernel(a, b)
    start = time.perf_counter()
    for _ in range(repeat):
        kernel(a, b)
    return 2 * n**3 * repeat / (time.perf_counter() - start) / 1e9


def bleu(hyp_text: str, ref: Path, work: Path, name: str) -> float:
    hyp = work / f"{name}.hyp"
    hyp.write_text(hyp_text)
    out = subprocess.run(
        nmt_cmd("eval", "--ref", str(ref), str(hyp), "--json"),
        capture_output=True,
        text=True,
        check=True,
    )
    return round(json.loads(out.stdout)["bleu"]["score"], 2)


def ours_train(data: Path, work: Path, steps: int, precision: str) -> dict[str, float]:
    run = work / f"train-{precision}"
    subprocess.run(["rm", "-rf", str(run)], check=True)
    seconds, rss, _ = timed(
        nmt_cmd(
            "train",
            str(data),
            "--out",
            str(run),
            "--config",
            str(CONFIG),
            "--device",
            "cpu",
            "--set",
            f"train.max_steps={steps}",
            "--set",
            f"train.precision={precision}",
            "--set",
            "train.log_every=25",
            "--set",
            f"train.valid_every={steps}",
        )
    )
    # The validation at the last step: bf16 must learn as fp32 does after the same updates.
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").open()]
    valid = [m for m in metrics if "valid_bleu" in m][-1]
    last = load_checkpoint(run / "checkpoints" / "last.pt")
    assert last.training is not None  # a training run's checkpoints can resume
    return {
        "tokens_per_s": round(steady_tokens_per_s(run / "train.log")),
        "tokens_per_step": round(last.training.train_tokens / last.step),
        "peak_rss_mib": round(rss),
        "wall_s": seconds,
        "valid_bleu": valid["valid_bleu"],
        "valid_ppl": valid["valid_ppl"],
    }


def ours_translate(
    model: Path,
    source: Path,
    ref: Path,
    work: Path,
    beam: int,
    precision: str = "fp32",
    default_kernels: bool = False,
) -> dict[str, float]:
    env = {**os.environ, "NMT_ONEDNN": "0"} if default_kernels else None
    seconds, rss, out, report = timed_with_stderr(
        nmt_cmd(
            "translate",
            str(model),
            "--beam",
            str(beam),
            "--batch-size",
            "64",
            "--input",
            str(source),
            "--precision",
            precision,
            quiet=False,  # its last stderr line reports the translating time
        ),
        env=env,
    )
    name = f"ours-beam{beam}-{precision}" + ("-default-kernels" if default_kernels else "")
    # The last stderr line: "translated N lines (...) in S s: ...; the model loaded in L s"
    timing = re.search(r"\) in ([\d.]+) s.*loaded in ([\d.]+) s", report.splitlines()[-1])
    assert timing, f"nmt translate did not report its speed: {report[-500:]}"
    return {
        "seconds": seconds,
        "translate_s": float(timing.group(1)),
        "load_s": float(timing.group(2)),
        "peak_rss_mib": round(rss),
        "bleu": bleu(out, ref, work, name),
    }


PEER_SCRIPTS = ROOT.parent / "shared" / "peers"
# Where ../shared/peers keeps its venvs, runs and logs.
PEERS_OUT = Path(os.environ.get("PEERS", f"{os.environ.get('TMPDIR', '/tmp')}/nmt-peers"))


def peers_prepare(toolkit: str) -> None:
    """The venv and data of `toolkit` (onmt or joey), built by its prepare.sh if missing."""
    subprocess.run(
        ["bash", str(PEER_SCRIPTS / toolkit / "prepare.sh")], check=True, capture_output=True
    )


def peers_train(toolkit: str, steps: int) -> dict[str, float]:
    """`toolkit` (onmt or joey, prepared) trains `steps` updates with its train.sh: its steady
    target tokens/s and mean target tokens per step (parse_logs.py, steps 50 on), and the
    elapsed seconds and peak RSS of the /usr/bin/time report."""
    scripts = PEER_SCRIPTS / toolkit
    subprocess.run(
        ["bash", str(scripts / "train.sh"), "steps", str(steps)], check=True, capture_output=True
    )
    prefix = PEERS_OUT / "logs" / f"{toolkit}_train_steps"
    parsed = subprocess.run(
        [
            str(PEERS_OUT / "tools" / "bin" / "python"),
            str(PEER_SCRIPTS / "common" / "parse_logs.py"),
            toolkit,
            f"{prefix}.log",
            str(prefix),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    summary = Path(f"{prefix}.summary").read_text()
    return {
        "tokens_per_s": _number(r"(\d+(?:\.\d+)?) (?:target |tgt )?tok/s", parsed),
        "tokens_per_step": _number(r"mean tgt tokens/step: (\d+)", parsed),
        "wall_s": _number(r"wall_s=([\d.]+)", summary),
        "peak_rss_mib": _number(r"peak_rss_largest_proc_MiB=(\d+)", summary),
    }


def _number(pattern: str, text: str) -> float:
    """The first group of `pattern` in a peer's report, as a number (NaN when it is absent)."""
    found = re.search(pattern, text)
    return float(found.group(1)) if found else float("nan")


def peers_translate(data: Path) -> dict[str, dict[str, float]] | None:
    """OpenNMT-py's translate.sh (test_2016_flickr, whole process, batch 64) on the model of its
    20-minute run (`onmt/train.sh budget 1200`), when there is one."""
    if not any((PEERS_OUT / "runs" / "onmt" / "budget").glob("model_step_*.pt")):
        print(
            "speed.py: no OpenNMT-py 20-minute model, so no translation side by side; "
            f"`bash {PEER_SCRIPTS}/onmt/train.sh budget 1200` trains one",
            file=sys.stderr,
        )
        return None
    subprocess.run(
        ["bash", str(PEER_SCRIPTS / "onmt" / "translate.sh")],
        check=True,
        capture_output=True,
        env={**os.environ, "SRC_DIR": str(data)},
    )
    table = {}
    for name in ("beam5", "greedy"):
        tag = PEERS_OUT / "logs" / f"onmt_translate_test_2016_flickr_{name}"
        summary = Path(f"{tag}.summary").read_text()
        table[name] = {
            "seconds": _number(r"wall_s=([\d.]+)", summary),
            # -report_time: from the model loaded to the last sentence translated
            "translate_s": _number(
                r"Total translation time \(s\): ([\d.]+)", Path(f"{tag}.log").read_text()
            ),
            "peak_rss_mib": _number(r"largest_proc_MiB=(\d+)", summary),
            "bleu": float(Path(f"{tag}.bleu").read_text().split()[-1]),
        }
    return table


def translate_rounds(
    model: Path, data: Path, work: Path, precisions: list[str], rounds: int, peers: bool
) -> tuple[dict[str, dict[str, object]], dict[str, dict[str, object]] | None]:
    """test_2016_flickr at beam 5 and greedy for each precision, then fp32 with PyTorch's
    default kernels, and (with `peers`) OpenNMT-py's translate.sh after ours in every round.

    Returns our rows ("beam5" and "greedy" for fp32, "beam5_int8" etc.) and OpenNMT-py's
    ("beam5", "greedy"), each with the median seconds over the rounds and every round's time.
    Our rows also get, against fp32 in the same round (medians): `speedup` (whole process) and
    `decode_speedup` (of the translation alone, as `nmt translate` times it), and with
    peers `of_onmt` (our seconds / OpenNMT-py's of that round).
    """
    source, ref = data / "test_2016_flickr.de", data / "test_2016_flickr.en"
    runs = [(p, p, False) for p in precisions] + [("fp32_default_kernels", "fp32", True)]
    ours: dict[str, list[dict[str, float]]] = {}
    theirs: dict[str, list[dict[str, float]]] = {}
    for round_no in range(1, rounds + 1):
        for name, beam in (("beam5", 5), ("greedy", 1)):
            for label, precision, default_kernels in runs:
                key = name if label == "fp32" else f"{name}_{label}"
                row = ours_translate(model, source, ref, work, beam, precision, default_kernels)
                ours.setdefault(key, []).append(row)
                print(
                    f"round {round_no} {name:6} {label}: {row['seconds']:6.1f} s "
                    f"(translating {row['translate_s']:.2f} s, loading {row['load_s']:.2f} s)  "
                    f"BLEU {row['bleu']:.2f}  "
                    f"peak {row['peak_rss_mib']} MiB",
                    file=sys.stderr,
                    flush=True,
                )
        if peers:
            onmt = peers_translate(data)
            if onmt is None:
                peers = False
                continue
            for key, row in onmt.items():
                theirs.setdefault(key, []).append(row)
                print(f"round {round_no} OpenNMT-py {key}: {row['seconds']:.1f} s", file=sys.stderr)
    table: dict[str, dict[str, object]] = {}
    for key, rows in ours.items():
        name = key.split("_")[0]
        fp32 = ours[name]
        entry = summarize(rows)
        entry["load_s"] = median([r["load_s"] for r in rows])
        if key != name:
            entry["speedup"] = median(
                [f["seconds"] / r["seconds"] for f, r in zip(fp32, rows, strict=True)]
            )
            entry["decode_speedup"] = median(
                [f["translate_s"] / r["translate_s"] for f, r in zip(fp32, rows, strict=True)]
            )
        if theirs:
            pairs = list(zip(rows, theirs[name], strict=True))
            entry["of_onmt"] = median([r["seconds"] / t["seconds"] for r, t in pairs])
            entry["decode_of_onmt"] = median(
                [r["translate_s"] / t["translate_s"] for r, t in pairs]
            )
        table[key] = entry
    peer_table = {key: summarize(rows) for key, rows in theirs.items()}
    return table, peer_table or None


def train_rounds(
    data: Path, work: Path, steps: int, rounds: int, peers: bool, joey: bool
) -> dict[str, object]:
    """`rounds` rounds of training, each nmt fp32, then OpenNMT-py (with `peers`), then nmt bf16;
    Joey NMT once, in the first round.

    Returns per toolkit and precision ("fp32", "bf16", "onmt_fp32", "joey_fp32") the median
    tokens/s with every round's, and the rest of the last round's figures (peak RSS: the
    largest); with peers, "of_onmt": for fp32 and bf16, the per-round ratios of our tokens/s to
    OpenNMT-py's, their median and range.
    """
    runs: dict[str, list[dict[str, float]]] = {}
    for round_no in range(1, rounds + 1):
        order = ["fp32", *(["onmt_fp32"] if peers else []), "bf16"]
        order += ["joey_fp32"] if joey and round_no == 1 else []
        for key in order:
            if key.endswith("_fp32"):
                row = peers_train(key.split("_")[0], steps)
            else:
                row = ours_train(data, work, steps, key)
            runs.setdefault(key, []).append(row)
            print(
                f"round {round_no} training {key}: {row['tokens_per_s']:,.0f} target tok/s, "
                f"{row['tokens_per_step']:,.0f} target tokens/step, "
                f"peak {row['peak_rss_mib']:,.0f} MiB",
                file=sys.stderr,
                flush=True,
            )
    train: dict[str, object] = {}
    for key, rows in runs.items():
        train[key] = {
            **rows[-1],
            "tokens_per_s": median([r["tokens_per_s"] for r in rows]),
            "tokens_per_s_by_round": [r["tokens_per_s"] for r in rows],
            "peak_rss_mib": max(r["peak_rss_mib"] for r in rows),
        }
    if peers:
        theirs = runs["onmt_fp32"]
        ratios = {}
        for key in ("fp32", "bf16"):
            by_round = [
                round(r["tokens_per_s"] / t["tokens_per_s"], 3)
                for r, t in zip(runs[key], theirs, strict=True)
            ]
            ratios[key] = {
                "median": median(by_round),
                "min": min(by_round),
                "max": max(by_round),
                "by_round": by_round,
            }
        train["of_onmt"] = ratios
    return train


def summarize(rows: list[dict[str, float]]) -> dict[str, object]:
    """One translation row over the rounds: median and per-round seconds (whole process, and
    the median of the translating alone), peak RSS, BLEU."""
    return {
        "seconds": median([r["seconds"] for r in rows]),
        "translate_s": median([r["translate_s"] for r in rows]),
        "seconds_by_round": [r["seconds"] for r in rows],
        "peak_rss_mib": max(r["peak_rss_mib"] for r in rows),
        "bleu": rows[-1]["bleu"],
    }


def median(values: list[float]) -> float:
    return round(statistics.median(values), 2)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    default_data = Path(
        os.environ.get("MULTI30K_DIR", ROOT.parent / "shared" / "data" / "multi30k")
    )
    parser.add_argument("--data", type=Path, default=default_data)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument(
        "--peers", action="store_true", help="also run OpenNMT-py's identical workload"
    )
    parser.add_argument(
        "--model", type=Path, help="time translation with this model (default: the fp32 run)"
    )
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "speed")
    parser.add_argument(
        "--precision",
        default="fp32",
        help="comma-separated translation precisions, e.g. fp32,bf16,int8 (fp32 is always run)",
    )
    parser.add_argument(
        "--joey",
        action="store_true",
        help="also train Joey NMT on the workload (its 300 steps take about 14 minutes here)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="rounds of training and translation, ours and OpenNMT-py's interleaved in each; "
        "medians are reported",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="results file (default: results/speed.json, or speed-translate.json)",
    )
    parser.add_argument(
        "--translate-only",
        action="store_true",
        help="skip training (needs --model); results go to results/speed-translate.json",
    )
    args = parser.parse_args()
    if args.translate_only and not args.model:
        parser.error("--translate-only needs --model")
    for given in (args.data, args.model):
        if args.out and given and args.out.resolve().is_relative_to(given.resolve()):
            parser.error(f"--out {args.out} is inside the input {given}: write it elsewhere")
    precisions = ["fp32"] + [p for p in args.precision.split(",") if p and p != "fp32"]
    work, data = args.work, args.work / "data"
    work.mkdir(parents=True, exist_ok=True)
    if not args.translate_only and not (data / "meta.json").is_file():
        subprocess.run(
            nmt_cmd(
                "preprocess",
                "--src",
                "de",
                "--tgt",
                "en",
                "--train",
                str(args.data / "train"),
                "--valid",
                str(args.data / "val"),
                "--test",
                str(args.data / "test_2016_flickr"),
                "--out",
                str(data),
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )
    results: dict[str, object] = {"commit": git_commit(), "cpu": cpu_model()}
    if not args.translate_only:
        results["steps"] = args.steps
    # FLOP utilization is measured against oneDNN's rate (the kernels nmt runs on).
    results["matmul_gflops"] = {
        "fp32": round(matmul_gflops(torch.float32, matmul)),
        "bf16": round(matmul_gflops(torch.bfloat16, matmul)),
        "fp32_default_blas": round(matmul_gflops(torch.float32, torch.mm)),
        "bf16_default": round(matmul_gflops(torch.bfloat16, torch.mm)),
    }
    if args.translate_only:
        results["translate"], results["translate_onmt"] = translate_rounds(
            args.model, args.data, work, precisions, args.rounds, args.peers
        )
        print_translate_table(results)
        path = args.out or ROOT / "benchmarks" / "results" / "speed-translate.json"
        path.write_text(json.dumps(results, indent=2, default=str) + "\n")
        return
    for toolkit in ["onmt"] * args.peers + ["joey"] * args.joey:
        peers_prepare(toolkit)
    train = train_rounds(data, work, args.steps, args.rounds, args.peers, args.joey)
    for key in ("fp32", "bf16"):
        rate = train[key]["tokens_per_s"]  # type: ignore[index]
        peak = results["matmul_gflops"][key]  # type: ignore[index]
        train[key]["flop_utilization"] = round(rate * MFLOP_PER_TRAINED_TOKEN / 1e3 / peak, 2)  # type: ignore[index]
    results["train"] = train

    model = args.model or work / "train-fp32"
    results["translate"], results["translate_onmt"] = translate_rounds(
        model, args.data, work, precisions, args.rounds, args.peers
    )
    four = "Ein Mann.\nZwei Hunde spielen im Schnee.\n\nEine Frau liest ein Buch.\n"
    seconds, _, _ = timed(nmt_cmd("translate", str(model)), stdin=four)
    results["latency_4_lines_s"] = seconds

    path = args.out or ROOT / "benchmarks" / "results" / "speed.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(json.dumps(results, indent=2, default=str))
    for key in ("fp32", "bf16", "onmt_fp32", "joey_fp32"):
        if key in train:
            row = train[key]  # type: ignore[index]
            print(
                f"training {key}: {row['tokens_per_s']:,.0f} target tok/s (median of "
                f"{len(row['tokens_per_s_by_round'])}), {row['tokens_per_step']:,.0f} target "
                f"tokens/step, peak {row['peak_rss_mib']:,.0f} MiB"
            )
    if "of_onmt" in train:
        for key, ratio in train["of_onmt"].items():  # type: ignore[attr-defined]
            spread = f"range {ratio['min']:.2f}-{ratio['max']:.2f}"
            print(
                f"training tokens/s, ours {key} of OpenNMT-py fp32: x{ratio['median']:.2f} "
                f"({spread} over {len(ratio['by_round'])} rounds)"
            )
    if "joey_fp32" in train:
        joey = train["joey_fp32"]["tokens_per_s"]  # type: ignore[index]
        fp32 = train["fp32"]["tokens_per_s"] / joey  # type: ignore[index]
        print(f"training tokens/s vs Joey NMT fp32 (one round): ours fp32 x{fp32:.2f}")
    print_translate_table(results)
    fp32_bleu, bf16_bleu = (train[k]["valid_bleu"] for k in ("fp32", "bf16"))  # type: ignore[index]
    print(f"valid BLEU after {args.steps} steps: fp32 {fp32_bleu}, bf16 {bf16_bleu}")


def print_translate_table(results: dict[str, object]) -> None:
    theirs = results["translate_onmt"] or {}
    for key, row in results["translate"].items():  # type: ignore[attr-defined]
        line = (
            f"translate {key}: {row['seconds']:.1f} s (translating {row['translate_s']:.2f} s), "
            f"BLEU {row['bleu']:.2f}"
        )
        if "speedup" in row:
            line += f"; vs fp32 x{row['speedup']:.2f}"
            line += f" (translation alone x{row['decode_speedup']:.2f})"
        if "of_onmt" in row:
            peer = theirs[key.split("_")[0]]  # type: ignore[index]
            line += (
                f"; OpenNMT-py {peer['seconds']:.1f} s (translating {peer['translate_s']:.2f} s), "
                f"BLEU {peer['bleu']:.2f}: x{row['of_onmt']:.2f} of its time "
                f"(translation alone x{row['decode_of_onmt']:.2f})"
            )
        print(line)


if __name__ == "__main__":
    main()
