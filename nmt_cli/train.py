"""Training: the loop, validation, early stopping, time budget, checkpoints and resume.

The hot loop never waits for the device: token counts come from the host-built batch, the
loss is read back only every `log_every` steps, and non-finite gradients skip their update on
the device (the fused Adam's `found_inf`), counted and checked at the same interval.
"""

from __future__ import annotations

import json
import logging
import math
import signal
import time
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from nmt_cli.checkpoint import CheckpointManager, load_checkpoint
from nmt_cli.config import Config, from_dict, load_config
from nmt_cli.data import Batch, TrainBatches, eval_batches
from nmt_cli.errors import ConfigError, DataError, NmtError
from nmt_cli.evaluate import score_corpus
from nmt_cli.loss import cross_entropy
from nmt_cli.model import Seq2Seq, build_model, init_weights
from nmt_cli.preprocess import EncodedSplit, load_meta
from nmt_cli.schedule import LRSchedule
from nmt_cli.tokenizer import Tokenizer
from nmt_cli.translate import search_sorted

log = logging.getLogger(__name__)


class TrainingInterrupted(NmtError):
    """SIGINT/SIGTERM: a checkpoint was written, the run can be resumed."""

    exit_code = 130


def resolve_device(name: str) -> torch.device:
    """auto -> cuda when available, else cpu; an explicit cuda without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available (use --device cpu or auto)")
    if name not in ("cpu",) and not name.startswith("cuda"):
        raise ConfigError(f"--device: unknown device {name!r}; valid: auto, cpu, cuda, cuda:N")
    return torch.device(name)


@dataclass
class Vocab:
    """The tokenizers of a preprocessed data folder."""

    src: Tokenizer
    tgt: Tokenizer
    joint: bool
    src_lang: str
    tgt_lang: str

    @classmethod
    def from_data_dir(cls, data_dir: Path) -> Vocab:
        meta = load_meta(data_dir)
        return cls(
            src=Tokenizer.load(data_dir / meta["src_spm"]),
            tgt=Tokenizer.load(data_dir / meta["tgt_spm"]),
            joint=meta["joint"],
            src_lang=meta["src_lang"],
            tgt_lang=meta["tgt_lang"],
        )

    def to_state(self) -> dict[str, Any]:
        return {
            "src_spm": self.src.model_bytes,
            "tgt_spm": self.tgt.model_bytes,
            "joint": self.joint,
            "src_lang": self.src_lang,
            "tgt_lang": self.tgt_lang,
        }


@dataclass
class TrainResult:
    steps: int
    best_score: float | None
    minutes: float
    tokens_per_second: float
    stopped_because: str


def _setup_logging(run_dir: Path) -> logging.Handler:
    handler = logging.FileHandler(run_dir / "train.log", encoding="utf-8")
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
    )
    logging.getLogger("nmt_cli").addHandler(handler)
    return handler


class Trainer:
    """Owns the model, optimizer, schedule, data stream and checkpoints of one run."""

    def __init__(
        self,
        config: Config,
        data_dir: Path,
        run_dir: Path,
        device: str = "auto",
        resume: bool = False,
    ):
        self.data_dir, self.run_dir = Path(data_dir), Path(run_dir)
        self.device = resolve_device(device)
        self.vocab = Vocab.from_data_dir(self.data_dir)
        resume_state = self._check_run_dir(resume)
        if resume_state is not None:
            config = self._merge_resume_config(config, resume_state)
        self.config = config
        t = config.train
        torch.manual_seed(t.seed)
        self.train_split = EncodedSplit.load(self.data_dir / "train.pt")
        self.valid_split = EncodedSplit.load(self.data_dir / "valid.pt")
        self.valid_refs = (self.data_dir / "valid.ref").read_text(encoding="utf-8").splitlines()
        try:
            self.batches = TrainBatches(
                self.train_split, t.batch_tokens, config.data.max_len, t.seed
            )
        except ValueError as e:
            raise DataError(f"{self.data_dir / 'train.pt'}: {e}") from None
        self.model: Seq2Seq = build_model(
            config.model,
            self.vocab.src.vocab_size,
            self.vocab.tgt.vocab_size,
            self.vocab.joint,
            config.data.reverse_source,
        ).to(self.device)
        init_weights(self.model, t.init_scale)
        self.optimizer = torch.optim.Adam(
            self.model.parameters(),
            lr=t.lr,
            betas=t.adam_betas,
            weight_decay=t.weight_decay,
            fused=True,
        )
        self.schedule = LRSchedule(self.optimizer, t)
        self.checkpoints = CheckpointManager(self.run_dir, t.keep_last, t.keep_best)
        self.step = 0
        self.best_score: float | None = None
        self.bad_validations = 0
        self.elapsed = 0.0  # seconds of this run's wall clock before this process (resume)
        self.train_seconds = 0.0
        self.train_tokens = 0
        self.autocast = (
            torch.autocast(self.device.type, dtype=torch.bfloat16)
            if t.precision == "bf16"
            else nullcontext()
        )
        if resume_state is not None:
            self._load_state(resume_state)
        (self.run_dir / "config.yaml").write_text(self.config.to_yaml(), encoding="utf-8")
        for side, tok in (("src", self.vocab.src), ("tgt", self.vocab.tgt)):
            tok.save(self.run_dir / ("spm.model" if self.vocab.joint else f"spm.{side}.model"))
        self._stop_signal: str | None = None
        self._bad_run = torch.zeros((), device=self.device)  # consecutive skipped updates
        self._bad_total = torch.zeros((), device=self.device)

    # ---- run folder, resume ------------------------------------------------------------
    def _check_run_dir(self, resume: bool) -> dict[str, Any] | None:
        last = self.run_dir / "checkpoints" / "last.pt"
        if resume:
            if not last.is_file():
                raise ConfigError(f"--resume: {last} does not exist (nothing to resume)")
            return load_checkpoint(last, map_location="cpu")
        if last.exists():
            raise ConfigError(
                f"{self.run_dir} already has checkpoints; use --resume or another --out"
            )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        return None

    def _merge_resume_config(self, config: Config, state: dict[str, Any]) -> Config:
        """Check that a resumed run keeps the checkpoint's data, model and vocabulary.

        The train and decode sections may change (e.g. a larger train.max_steps).
        """
        saved = from_dict(state["config"])
        for section in ("data", "model"):
            mine, theirs = getattr(config, section).__dict__, getattr(saved, section).__dict__
            for key in mine:
                if mine[key] != theirs[key]:
                    raise ConfigError(
                        f"--resume: {section}.{key} is {mine[key]!r} but the checkpoint was "
                        f"trained with {theirs[key]!r}"
                    )
        vocab = state["vocab"]
        if (
            vocab["src_spm"] != self.vocab.src.model_bytes
            or vocab["tgt_spm"] != self.vocab.tgt.model_bytes
        ):
            raise ConfigError(
                f"--resume: {self.data_dir} has another vocabulary than the checkpoint"
            )
        return config

    def _load_state(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.batches.load_state_dict(state["sampler"])
        self.step, self.best_score = state["step"], state["best_score"]
        self.bad_validations = state["bad_validations"]
        self.elapsed = state["elapsed"]
        self.train_seconds, self.train_tokens = state["train_seconds"], state["train_tokens"]
        torch.set_rng_state(state["rng"]["torch"])
        if torch.cuda.is_available() and state["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        log.info("resumed from step %d", self.step)

    def _state(self) -> dict[str, Any]:
        return {
            "config": self.config.to_dict(),
            "vocab": self.vocab.to_state(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "sampler": self.batches.state_dict(),
            "step": self.step,
            "best_score": self.best_score,
            "bad_validations": self.bad_validations,
            "elapsed": self.elapsed + time.perf_counter() - self._start,
            "train_seconds": self.train_seconds,
            "train_tokens": self.train_tokens,
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            },
        }

    # ---- the loop ------------------------------------------------------------------------
    def _batches(self) -> Iterator[list[Batch]]:
        """Groups of `accumulate` batches, already on their way to the device."""
        stream = iter(self.batches)
        pin = self.device.type == "cuda"
        while True:
            group = [next(stream) for _ in range(self.config.train.accumulate)]
            yield [(b.pin_memory() if pin else b).to(self.device) for b in group]

    def train_step(self, group: list[Batch]) -> torch.Tensor:
        """One update over `accumulate` batches; returns the summed loss (a device tensor)."""
        t = self.config.train
        n_tokens = sum(b.n_tokens for b in group)
        total = torch.zeros((), device=self.device)
        for batch in group:
            with self.autocast:
                outputs = self.model(batch.src, batch.src_mask, batch.src_lengths, batch.tgt_in)
                hidden = outputs.reshape(-1, outputs.size(-1)).index_select(
                    0, batch.target_index
                )  # N x O
                loss = cross_entropy(self.model.generator(hidden), batch.targets, t.label_smoothing)
            (loss / n_tokens).backward()
            total += loss.detach()
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.clip_norm, foreach=True)
        found_inf = (~torch.isfinite(norm)).float()
        self.optimizer.found_inf = found_inf  # type: ignore[attr-defined]  # fused Adam skips on the device
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self._bad_run = (self._bad_run + found_inf) * found_inf  # consecutive non-finite steps
        self._bad_total += found_inf
        return total

    def train(self) -> TrainResult:
        """Run until max_steps, max_minutes, early stopping or a signal."""
        t = self.config.train
        handler = _setup_logging(self.run_dir)
        old_handlers = {
            s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)
        }
        self._start = time.perf_counter()
        n_params = sum(p.numel() for p in self.model.parameters())
        log.info(
            "training on %s: %s parameters, %d training pairs (%d over data.max_len skipped)",
            self.device,
            f"{n_params:,}",
            len(self.batches.candidates),
            self.batches.skipped,
        )
        stop = "max_steps"
        window_loss = torch.zeros((), device=self.device)
        window_tokens, window_start = 0, time.perf_counter()
        last_valid_seconds = 0.0
        bar = tqdm(
            total=t.max_steps,
            initial=self.step,
            desc="train",
            unit="step",
            dynamic_ncols=True,
            leave=False,
        )
        try:
            self.model.train()
            batches = self._batches()
            while self.step < t.max_steps:
                group = next(batches)
                self.step += 1
                self.schedule.step(self.step)
                window_loss += self.train_step(group)
                n = sum(b.n_tokens for b in group)
                window_tokens += n
                self.train_tokens += n
                bar.update(1)
                if self.step % t.log_every == 0:
                    now = time.perf_counter()
                    self.train_seconds += now - window_start
                    loss = window_loss.item() / max(window_tokens, 1)
                    speed = window_tokens / max(now - window_start, 1e-9)
                    lr = self.optimizer.param_groups[0]["lr"]
                    bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{speed:,.0f}", lr=f"{lr:.2e}")
                    log.info("step %d loss %.4f tok/s %.0f lr %.2e", self.step, loss, speed, lr)
                    self._last_loss = loss
                    self._check_bad_steps()
                    window_loss.zero_()
                    window_tokens, window_start = 0, time.perf_counter()
                if self._stop_signal:  # save now; validation could take long
                    self.checkpoints.save(self._state(), self.step, None)
                    raise TrainingInterrupted(
                        f"{self._stop_signal}: stopped at step {self.step}; checkpoint saved, "
                        f"continue with --resume"
                    )
                elapsed = self._elapsed()
                out_of_time = (
                    t.max_minutes > 0 and elapsed + last_valid_seconds > t.max_minutes * 60
                )
                if (
                    self.step % t.valid_every == 0
                    or out_of_time
                    or self.step == t.max_steps
                    or self._stop_signal
                ):
                    self.train_seconds += time.perf_counter() - window_start
                    v_start = time.perf_counter()
                    improved = self._validate_and_save()
                    last_valid_seconds = time.perf_counter() - v_start
                    window_tokens, window_start = 0, time.perf_counter()
                    window_loss.zero_()
                    if out_of_time:
                        stop = "max_minutes"
                        break
                    if t.patience and not improved and self.bad_validations >= t.patience:
                        stop = "early stopping"
                        break
        finally:
            bar.close()
            for s, h in old_handlers.items():
                signal.signal(s, h)
            logging.getLogger("nmt_cli").removeHandler(handler)
            handler.close()
        result = TrainResult(
            steps=self.step,
            best_score=self.best_score,
            minutes=self._elapsed() / 60,
            tokens_per_second=self.train_tokens / max(self.train_seconds, 1e-9),
            stopped_because=stop,
        )
        log.info(
            "done after %d steps (%s): %.1f min, %.0f target tokens/s",
            result.steps,
            stop,
            result.minutes,
            result.tokens_per_second,
        )
        return result

    def _elapsed(self) -> float:
        return self.elapsed + time.perf_counter() - self._start

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self._stop_signal:  # second signal: give up at once
            raise KeyboardInterrupt
        self._stop_signal = signal.Signals(signum).name
        log.warning("%s received: saving a checkpoint after this step", self._stop_signal)

    def _check_bad_steps(self) -> None:
        bad_total, bad_run = int(self._bad_total.item()), int(self._bad_run.item())
        if bad_total:
            log.warning("%d updates skipped so far for non-finite gradients", bad_total)
        if bad_run >= self.config.train.max_bad_steps:
            raise NmtError(
                f"training diverged: {bad_run} non-finite losses in a row at step {self.step}; "
                f"the last good checkpoint is {self.checkpoints.last_path} (try a lower train.lr)"
            )

    # ---- validation ------------------------------------------------------------------------
    @torch.inference_mode()
    def validate(self) -> dict[str, float]:
        """Perplexity (no smoothing) and BLEU of the current model on the valid split."""
        self.model.eval()
        total_loss, total_tokens = torch.zeros((), device=self.device), 0
        for batch in eval_batches(self.valid_split, self.config.train.batch_tokens * 2):
            batch = batch.to(self.device)
            with self.autocast:
                outputs = self.model(batch.src, batch.src_mask, batch.src_lengths, batch.tgt_in)
                hidden = outputs.reshape(-1, outputs.size(-1)).index_select(0, batch.target_index)
                total_loss += cross_entropy(self.model.generator(hidden), batch.targets)
            total_tokens += batch.n_tokens
        d = self.config.decode
        sources = [self.valid_split.pair(i)[0] for i in range(len(self.valid_split))]
        with self.autocast:
            hyps = search_sorted(
                self.model,
                sources,
                self.device,
                d.batch_size,
                beam=self.config.train.valid_beam,
                alpha=d.alpha,
                max_len_a=d.max_len_a,
                max_len_b=d.max_len_b,
            )
        texts = [self.vocab.tgt.decode(h[0].tokens) for h in hyps]
        bleu = score_corpus(texts, self.valid_refs, ["bleu"])[0].score
        self.model.train()
        return {
            "valid_ppl": math.exp(min(total_loss.item() / total_tokens, 50)),
            "valid_bleu": bleu,
        }

    def _validate_and_save(self) -> bool:
        metrics = self.validate()
        score = (
            metrics["valid_bleu"]
            if self.config.train.stop_metric == "bleu"
            else -metrics["valid_ppl"]
        )
        improved = self.best_score is None or score > self.best_score
        if improved:
            self.best_score, self.bad_validations = score, 0
        else:
            self.bad_validations += 1
        self.schedule.on_validation(score)
        row = {
            "step": self.step,
            "minutes": round(self._elapsed() / 60, 3),
            "train_loss": round(getattr(self, "_last_loss", float("nan")), 4),
            "valid_ppl": round(metrics["valid_ppl"], 3),
            "valid_bleu": round(metrics["valid_bleu"], 2),
            "lr": self.optimizer.param_groups[0]["lr"],
            "tokens_per_s": round(self.train_tokens / max(self.train_seconds, 1e-9), 1),
        }
        with open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        log.info(
            "validation at step %d: ppl %.2f BLEU %.2f%s",
            self.step,
            row["valid_ppl"],
            row["valid_bleu"],
            " (best)" if improved else "",
        )
        self.checkpoints.save(self._state(), self.step, score)
        return improved


def saved_config(run_dir: Path) -> Config:
    """The resolved config of an existing run: the base that `--resume` overrides apply to."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise ConfigError(f"--resume: {path} does not exist (nothing to resume)")
    return load_config(path)


def train(
    config: Config, data_dir: Path, run_dir: Path, device: str = "auto", resume: bool = False
) -> TrainResult:
    """Train a model on a preprocessed data folder into a run folder (the library entry point)."""
    with logging_redirect_tqdm():
        return Trainer(config, data_dir, run_dir, device, resume).train()
