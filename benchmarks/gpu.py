"""GPU benchmark (`make bench-gpu`): training and translation speed on one CUDA device.

Measures, on Multi30k de-en, in under 8 minutes on one modern GPU:
- training target tokens/s (steady, after the first 50 steps) and peak GPU memory, in fp32 and
  bf16 autocast, for the peer workload (benchmarks/configs/peer-workload.yaml) and for a larger
  model (4-layer encoder and decoder, 1,024 hidden, 8,192 tokens per batch);
- translation of test_2016_flickr with beam 5 and greedy on the GPU, fp32 and bf16: whole process
  and the translating time `nmt translate` reports, with BLEU (of a short-trained model: the
  figure checks that both precisions agree, not the model's quality);
- with two or more visible GPUs, a short `--nproc N` DDP run over NCCL, checking that its
  first update equals one process accumulating the same N batches (within 1e-5).
Training runs in this process through the library (`nmt_cli.train.train`), so that the peak
GPU memory is torch's own count; translation runs the real `nmt translate` command.
Writes benchmarks/results/gpu.json with the GPU's name. Where there is no CUDA device it says
so in one line and exits 0 (nothing written); `--device cpu` runs the same steps on the CPU
with a few steps each, to check the script itself.

    python benchmarks/gpu.py --data ../shared/data/multi30k
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
from quality import git_commit
from speed import bleu, nmt_cmd, steady_tokens_per_s, timed_with_stderr

from nmt_cli.checkpoint import load_checkpoint
from nmt_cli.config import load_config
from nmt_cli.runtime import log_to_console
from nmt_cli.train import train

ROOT = Path(__file__).resolve().parents[1]
PEER_CONFIG = ROOT / "benchmarks" / "configs" / "peer-workload.yaml"
LARGE_MODEL = [
    "model.enc_layers=4",
    "model.dec_layers=4",
    "model.enc_hidden=1024",
    "model.dec_hidden=1024",
    "model.emb_size=512",
    "train.batch_tokens=8192",
]
WORKLOADS = {"peer": [], "large": LARGE_MODEL}


def train_speed(
    data: Path, run: Path, device: str, steps: int, precision: str, extra: list[str]
) -> dict[str, float]:
    """Train `steps` updates in this process: steady tokens/s and torch's peak GPU memory."""
    overrides = [
        f"train.max_steps={steps}",
        f"train.precision={precision}",
        f"train.log_every={max(1, min(25, steps // 3))}",
        f"train.valid_every={steps}",
        *extra,
    ]
    config = load_config(PEER_CONFIG, overrides)
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    train(config, data, run, device=device)
    wall = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else 0.0
    return {
        "tokens_per_s": round(
            steady_tokens_per_s(run / "train.log", after_step=min(50, steps // 2))
        ),
        "peak_gpu_mib": round(peak),
        "wall_s": round(wall, 1),
    }


def translate_speed(
    model: Path, source: Path, ref: Path, work: Path, device: str, beam: int, precision: str
) -> dict[str, float]:
    """Whole-process and translating seconds of `nmt translate` on the device, with BLEU."""
    cmd = nmt_cmd(
        "translate", str(model), "--beam", str(beam), "--batch-size", "128", "--input",
        str(source), "--device", device, "--precision", precision, quiet=False,
    )  # fmt: skip
    seconds, _, out, report = timed_with_stderr(cmd)
    last = report.strip().splitlines()[-1]
    translating = float(last.split(") in ")[1].split(" s")[0])
    return {
        "seconds": round(seconds, 2),
        "translate_s": translating,
        "bleu": bleu(out, ref, work, f"gpu-beam{beam}-{precision}"),
    }


def ddp_first_update(data: Path, work: Path, gpus: int) -> dict[str, object]:
    """`--nproc N` over NCCL for one update against one process accumulating N batches."""
    if gpus < 2:
        return {"skipped": f"{gpus} GPU visible: DDP needs two or more"}
    no_dropout = ["--set", "model.dropout=0", "--set", "model.emb_dropout=0"]
    common = ["--config", str(PEER_CONFIG), "--device", "cuda", *no_dropout]
    runs = {"ddp": work / "ddp", "one": work / "ddp-one"}
    for run in runs.values():
        subprocess.run(["rm", "-rf", str(run)], check=True)
    steps = ["--set", "train.max_steps=1", "--set", "train.valid_every=1"]
    subprocess.run(
        nmt_cmd("train", str(data), "--out", str(runs["ddp"]), *common, *steps,
                "--nproc", str(gpus)),
        check=True,
    )  # fmt: skip
    subprocess.run(
        nmt_cmd("train", str(data), "--out", str(runs["one"]), *common, *steps,
                "--set", f"train.accumulate={gpus}"),
        check=True,
    )  # fmt: skip
    ddp = load_checkpoint(runs["ddp"] / "checkpoints/last.pt").model
    one = load_checkpoint(runs["one"] / "checkpoints/last.pt").model
    worst = max((ddp[name] - one[name]).abs().max().item() for name in ddp)
    return {"ranks": gpus, "max_abs_difference": worst, "equal_within_1e-5": worst <= 1e-5}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/multi30k")
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks/work/gpu")
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N, or cpu (a dry run)")
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu.py: no CUDA device here: skipped (nothing measured or written)")
        return
    dry = args.device == "cpu"
    log_to_console()  # in-process training logs its steps to stderr and RUN/train.log
    steps = 6 if dry else args.steps
    args.work.mkdir(parents=True, exist_ok=True)
    data = args.work / "data"
    if not data.is_dir():
        subprocess.run(
            nmt_cmd("preprocess", "--src", "de", "--tgt", "en", "--train", str(args.data / "train"),
                    "--valid", str(args.data / "val"), "--out", str(data)),
            check=True,
        )  # fmt: skip
    results: dict[str, object] = {
        "device": torch.cuda.get_device_name(args.device) if not dry else "cpu (dry run)",
        "gpus": torch.cuda.device_count() if not dry else 0,
        "torch": torch.__version__,
        "commit": git_commit(),
        "train": {},
        "translate": {},
    }
    for name, extra in WORKLOADS.items():
        for precision in ("fp32", "bf16"):
            run = args.work / f"train-{name}-{precision}"
            subprocess.run(["rm", "-rf", str(run)], check=True)
            cell = train_speed(data, run, args.device, steps if name == "peer" else steps // 2,
                               precision, extra)  # fmt: skip
            results["train"][f"{name}-{precision}"] = cell  # type: ignore[index]
            print(f"train {name} {precision}: {cell}", flush=True)
    model = args.work / "train-peer-fp32"
    test = args.data / "test_2016_flickr"
    if dry:  # 40 lines are enough to check the script
        for side in ("de", "en"):
            lines = test.with_suffix(f".{side}").read_text(encoding="utf-8").splitlines()[:40]
            (args.work / f"test40.{side}").write_text("\n".join(lines) + "\n", encoding="utf-8")
        test = args.work / "test40"
    for beam in (5, 1):
        for precision in ("fp32", "bf16"):
            cell = translate_speed(model, test.with_suffix(".de"), test.with_suffix(".en"),
                                   args.work, args.device, beam, precision)  # fmt: skip
            results["translate"][f"beam{beam}-{precision}"] = cell  # type: ignore[index]
            print(f"translate beam {beam} {precision}: {cell}", flush=True)
    results["ddp"] = ddp_first_update(data, args.work, 0 if dry else torch.cuda.device_count())
    print(f"ddp: {results['ddp']}")
    out = ROOT / "benchmarks/results" / ("gpu-dry-run.json" if dry else "gpu.json")
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
