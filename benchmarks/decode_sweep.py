"""Decoding choices for a trained Multi30k run, tuned on val only.

Beam size and length penalty (alpha) are swept on val; the setting with the best val BLEU
is then reported on test_2016_flickr beside the checkpoint's default, and so are
`nmt average`d checkpoints and an ensemble of the best ones.

    python benchmarks/decode_sweep.py RUN_DIR [--data ../shared/data/multi30k]

Writes benchmarks/results/decode-sweep.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace
from pathlib import Path

from quality import ROOT, git_commit

from nmt_cli.average import average_checkpoints, run_checkpoints
from nmt_cli.evaluate import score_corpus
from nmt_cli.translate import Translator

BEAMS = (1, 5, 10)
ALPHAS = (0.0, 0.6, 1.0, 1.5, 2.0)


def bleu(translator: Translator, data: Path, split: str, src: str, tgt: str) -> float:
    lines = (data / f"{split}.{src}").read_text(encoding="utf-8").splitlines()
    refs = (data / f"{split}.{tgt}").read_text(encoding="utf-8").splitlines()
    return round(score_corpus(translator.translate(lines), refs)[0].score, 2)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run", type=Path, help="a run folder (nmt train --out)")
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(os.environ.get("MULTI30K_DIR", ROOT.parent / "shared/data/multi30k")),
    )
    parser.add_argument("--src", default="de")
    parser.add_argument("--tgt", default="en")
    args = parser.parse_args()

    def score(translator: Translator, split: str) -> float:
        return bleu(translator, args.data, split, args.src, args.tgt)

    translator = Translator.load(args.run)
    default = translator.decode
    rows: list[dict[str, object]] = []
    for beam in BEAMS:
        for alpha in ALPHAS if beam > 1 else (0.0,):
            translator.decode = replace(default, beam=beam, alpha=alpha)
            start = time.perf_counter()
            rows.append(
                {
                    "checkpoint": "best",
                    "beam": beam,
                    "alpha": alpha,
                    "valid_bleu": score(translator, "val"),
                    "val_seconds": round(time.perf_counter() - start, 1),
                }
            )
            print(rows[-1], flush=True)
    chosen = max(rows, key=lambda r: r["valid_bleu"])  # type: ignore[arg-type, return-value]
    beam, alpha = int(chosen["beam"]), float(chosen["alpha"])  # type: ignore[call-overload]
    for row in rows:
        if (row["beam"], row["alpha"]) in {(beam, alpha), (default.beam, default.alpha), (1, 0.0)}:
            translator.decode = replace(default, beam=row["beam"], alpha=row["alpha"])
            row["test_2016_bleu"] = score(translator, "test_2016_flickr")

    averaged = args.run / "averaged-best3.pt"
    average_checkpoints(run_checkpoints(args.run, "best", 3), averaged)
    variants = {
        "nmt average --best 3": Translator.load(args.run, str(averaged)),
        "ensemble of the best 3": Translator.load(
            args.run, [str(p) for p in run_checkpoints(args.run, "best", 3)]
        ),
    }
    for name, model in variants.items():
        model.decode = replace(default, beam=beam, alpha=alpha)
        rows.append(
            {
                "checkpoint": name,
                "beam": beam,
                "alpha": alpha,
                "valid_bleu": score(model, "val"),
                "test_2016_bleu": score(model, "test_2016_flickr"),
            }
        )
        print(rows[-1], flush=True)

    path = ROOT / "benchmarks" / "results" / "decode-sweep.json"
    path.write_text(
        json.dumps(
            {
                "commit": git_commit(),
                "run": str(args.run),
                "chosen_on_val": [beam, alpha],
                "rows": rows,
            },
            indent=2,
        )
        + "\n"
    )
    print("| checkpoint | beam | alpha | valid BLEU | test_2016 BLEU |\n|---|---|---|---|---|")
    for r in rows:
        test = r.get("test_2016_bleu")
        print(
            f"| {r['checkpoint']} | {r['beam']} | {r['alpha']} | {r['valid_bleu']:.2f} | "
            + (f"{test:.2f} |" if isinstance(test, float) else "– |")
        )
    print(f"\nchosen on val: beam {beam}, alpha {alpha}; written to {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
