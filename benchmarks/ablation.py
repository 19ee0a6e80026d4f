"""Multi30k ablation: one change at a time against examples/multi30k-de-en.yaml, equal compute.

Every variant trains under the same budget and thread count, then translates val and
test_2016_flickr with beam 5 from its best.pt and is scored with sacreBLEU. The budget is
wall-clock minutes (`--minutes`: equal compute, but only fair on an otherwise idle machine) or
updates (`--steps`: unaffected by other load; the minutes are still reported). Variants run
`--parallel` at a time with `--threads` each.

    python benchmarks/ablation.py --minutes 8 --threads 1 --parallel 2
    python benchmarks/ablation.py --steps 1000 --only baseline dot-attention

Writes benchmarks/results/ablation.json (other budgets: ablation-20min.json,
ablation-1000-steps.json, ...) and prints a markdown table. Rows of earlier runs
with the same budget and threads are kept (each row names its commit); a variant run
again replaces its row.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from quality import ROOT, git_commit

DEFAULT_DATA = Path(os.environ.get("MULTI30K_DIR", ROOT.parent / "shared/data/multi30k"))
CONFIG = ROOT / "examples" / "multi30k-de-en.yaml"


@dataclass(frozen=True)
class Variant:
    name: str
    change: str  # what the row says
    overrides: tuple[str, ...] = ()
    preprocess: tuple[str, ...] = ()  # extra `nmt preprocess` arguments (own data folder)
    decode: tuple[str, ...] = field(default=("--beam", "5"))


VARIANTS = [
    Variant("baseline", "examples/multi30k-de-en.yaml (2-layer biLSTM, general attention)"),
    Variant("dot-attention", "Luong dot attention", ("model.attention=dot",)),
    Variant("bahdanau-attention", "Bahdanau additive attention", ("model.attention=bahdanau",)),
    Variant("no-input-feeding", "no input feeding", ("model.input_feeding=false",)),
    Variant("one-layer-encoder", "1-layer encoder (the peers' model)", ("model.enc_layers=1",)),
    Variant("no-word-dropout", "word dropout 0.1 -> 0", ("model.word_dropout=0.0",)),
    Variant("no-label-smoothing", "label smoothing 0.1 -> 0", ("train.label_smoothing=0.0",)),
    Variant("separate-embeddings", "separate source/target embeddings",
            ("model.share_embeddings=false",)),
    Variant("fp32", "fp32 instead of bf16 autocast", ("train.precision=fp32",)),
    Variant("batch-4096", "4,096 target tokens per batch", ("train.batch_tokens=4096",)),
    Variant("vocab-16k", "joint vocabulary 16,000 pieces", preprocess=("--vocab-size", "16000")),
    Variant("separate-vocab", "separate 8,000 vocabularies", ("model.share_embeddings=false",),
            preprocess=("--separate-vocab",)),
    Variant("tied-output", "output layer = target embeddings", ("model.tie_output=true",)),
    Variant("lr-0.001", "learning rate 0.002 -> 0.001", ("train.lr=0.001",)),
    Variant("concat-attention", "Luong concat attention", ("model.attention=concat",)),
    Variant("unidirectional", "unidirectional encoder (1 x 512)", ("model.bidirectional=false",)),
    Variant("three-layer-encoder", "3-layer encoder", ("model.enc_layers=3",)),
    Variant("wider-768", "encoder 2 x 384, decoder 768", ("model.enc_hidden=768",
            "model.dec_hidden=768")),
    Variant("dropout-0.2", "dropout 0.3 -> 0.2 (RNN outputs and embeddings)",
            ("model.dropout=0.2", "model.emb_dropout=0.2")),
    Variant("reverse-source", "source reversed", ("data.reverse_source=true",)),
    Variant("vocab-4k", "joint vocabulary 4,000 pieces", preprocess=("--vocab-size", "4000")),
    Variant("bpe", "BPE instead of unigram pieces", preprocess=("--model-type", "bpe")),
    Variant("batch-1024", "1,024 target tokens per batch", ("train.batch_tokens=1024",)),
]  # fmt: skip


def run(cmd: list[str], env: dict[str, str], log: Path) -> str:
    with log.open("a") as err:
        return subprocess.run(
            cmd, check=True, stdout=subprocess.PIPE, stderr=err, text=True, env=env
        ).stdout


def nmt_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "nmt_cli", *args]


def prepare(data_dir: Path, out: Path, extra: tuple[str, ...], env: dict[str, str]) -> Path:
    """Encoded data for a preprocessing variant (cached by its arguments)."""
    encoded = out / ("data" + "".join(a.replace("-", "_") for a in extra))
    if not (encoded / "meta.json").is_file():
        run(
            nmt_cmd(
                "preprocess",
                "--src", "de", "--tgt", "en",
                "--train", str(data_dir / "train"),
                "--valid", str(data_dir / "val"),
                "--test", str(data_dir / "test_2016_flickr"),
                "--out", str(encoded),
                *extra,
            ),
            env,
            out / "preprocess.log",
        )  # fmt: skip
    return encoded


def bleu(data_dir: Path, split: str, hyp: Path, env: dict[str, str], log: Path) -> float:
    scores = json.loads(
        run(nmt_cmd("eval", "--ref", str(data_dir / f"{split}.en"), str(hyp), "--json"), env, log)
    )
    return round(scores["bleu"]["score"], 2)


def run_variant(
    variant: Variant, data_dir: Path, out: Path, budget: str, env: dict[str, str]
) -> dict[str, object]:
    encoded = prepare(data_dir, out, variant.preprocess, env)
    folder = out / variant.name
    subprocess.run(["rm", "-rf", str(folder)], check=True)
    folder.mkdir(parents=True)
    log = folder / "stderr.log"
    sets = [budget, *variant.overrides]
    print(f"[{time.strftime('%H:%M:%S')}] {variant.name}: training", file=sys.stderr, flush=True)
    run(
        nmt_cmd(
            "--quiet", "train", str(encoded), "--out", str(folder / "run"),
            "--config", str(CONFIG), *[a for s in sets for a in ("--set", s)],
        ),
        env,
        log,
    )  # fmt: skip
    rows = [json.loads(line) for line in (folder / "run" / "metrics.jsonl").open()]
    rows = [row for row in rows if "valid_bleu" in row]  # the validations' rows
    row: dict[str, object] = {
        "name": variant.name,
        "change": variant.change,
        "overrides": sets,
        "preprocess": list(variant.preprocess),
        "steps": rows[-1]["step"],
        "train_minutes": rows[-1]["minutes"],
        "target_tokens_per_s": rows[-1]["tokens_per_s"],
    }
    for split, key in (("val", "valid_bleu"), ("test_2016_flickr", "test_2016_bleu")):
        hyp = folder / f"{split}.hyp.en"
        run(
            nmt_cmd(
                "translate", str(folder / "run"), *variant.decode,
                "--input", str(data_dir / f"{split}.de"), "--output", str(hyp),
            ),
            env,
            log,
        )  # fmt: skip
        row[key] = bleu(data_dir, split, hyp, env, log)
    print(f"[{time.strftime('%H:%M:%S')}] {variant.name}: {row}", file=sys.stderr, flush=True)
    return row


def table(rows: list[dict[str, object]]) -> str:
    lines = [
        "| change | valid BLEU | test_2016 BLEU | steps | minutes | tokens/s |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['change']} | {r['valid_bleu']:.2f} | {r['test_2016_bleu']:.2f} | "
            f"{r['steps']:,} | {r['train_minutes']:.1f} | {r['target_tokens_per_s']:,.0f} |"
        )
    return "\n".join(lines)


def merged(path: Path, rows: list[dict[str, object]], budget: str, threads: int) -> list:
    """Earlier rows of the same budget and threads, with this run's rows replacing theirs."""
    if not path.is_file():
        return rows
    old = json.loads(path.read_text())
    old_budget = old.get("budget", f"train.max_minutes={old.get('minutes')}")
    if (old_budget, old["threads_per_variant"]) != (budget, threads):
        return rows
    fresh = {r["name"] for r in rows}
    kept = [{"commit": old.get("commit"), **r} for r in old["rows"] if r["name"] not in fresh]
    order = [v.name for v in VARIANTS]
    return sorted(kept + rows, key=lambda r: order.index(r["name"]))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="raw Multi30k folder")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "work" / "ablation")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, default=8.0, help="training minutes per variant")
    budget.add_argument("--steps", type=int, help="training updates per variant (not minutes)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per variant")
    parser.add_argument("--parallel", type=int, default=2, help="variants trained at once")
    names = [v.name for v in VARIANTS]
    parser.add_argument("--only", nargs="+", choices=names, default=names)
    args = parser.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    chosen = [v for v in VARIANTS if v.name in args.only]
    for extra in {v.preprocess for v in chosen}:  # before the pool: variants share data
        prepare(args.data, args.out, extra, {**os.environ})
    budget_set = (
        f"train.max_minutes={args.minutes}"
        if args.steps is None
        else f"train.max_steps={args.steps}"  # the config's 45-minute limit stays as a cap
    )
    with ThreadPoolExecutor(args.parallel) as pool:
        rows = list(
            pool.map(lambda v: run_variant(v, args.data, args.out, budget_set, env), chosen)
        )
    for row in rows:
        row["commit"] = git_commit()
    if args.steps is not None:
        name = f"ablation-{args.steps}-steps.json"
    else:  # the default 8-minute table is ablation.json; other budgets get their own file
        name = "ablation.json" if args.minutes == 8 else f"ablation-{args.minutes:g}min.json"
    path = ROOT / "benchmarks" / "results" / name
    rows = merged(path, rows, budget_set, args.threads)
    results = {
        "budget": budget_set,
        "threads_per_variant": args.threads,
        "parallel": args.parallel,
        "decode": "beam 5, best.pt",
        "rows": rows,
    }
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(table(rows))
    print(f"\nwritten to {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
