"""Training: the loop, validation, early stopping, time budget, checkpoints and resume.

The hot loop never waits for the device: token counts come from the host-built batch, the
loss is read back only every `log_every` steps, and a non-finite loss or gradient skips its
update on the device (the fused Adam's `found_inf`), counted and checked at the same interval.
A batch that runs out of device memory is split in two and retried.

Under torchrun each rank trains on its own share of every update's batches and DDP sums the
gradients; rank 0 validates, logs and writes checkpoints, and every decision to stop is taken
by all ranks together (see `nmt_cli.distributed`).
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

from nmt_cli import rundir
from nmt_cli.checkpoint import Checkpoint, TrainingState, score_from_metric
from nmt_cli.checkpoint_manager import CheckpointManager
from nmt_cli.config import Config
from nmt_cli.corpus import EncodedSplit, Vocab
from nmt_cli.data import Batch, TrainBatches, eval_batches
from nmt_cli.decoding import search_sorted
from nmt_cli.device import resolve_device
from nmt_cli.distributed import Dist, process_group
from nmt_cli.errors import CheckpointError, DataError, NmtError
from nmt_cli.evaluate import score_corpus
from nmt_cli.loss import generator_loss
from nmt_cli.model import Seq2Seq, build_model, init_weights
from nmt_cli.progress import TrainProgress
from nmt_cli.schedule import LRSchedule

log = logging.getLogger(__name__)


class TrainingInterrupted(NmtError):
    """SIGINT/SIGTERM: a checkpoint was written, the run can be resumed."""

    exit_code = 130


@dataclass
class TrainResult:
    steps: int
    best_score: float | None
    minutes: float
    tokens_per_second: float  # of rank 0 when there are several ranks
    stopped_because: str
    rank: int = 0
    ranks: int = 1

    def summary(self, stop_metric: str) -> str:
        """The line `nmt train` prints at the end (`stop_metric` names the best score)."""
        best = "n/a" if self.best_score is None else f"{self.best_score:.2f}"
        per_rank = f" per rank ({self.ranks} ranks)" if self.ranks > 1 else ""
        return (
            f"steps {self.steps} ({self.stopped_because}), {self.minutes:.1f} min, "
            f"{self.tokens_per_second:,.0f} target tokens/s{per_rank}, "
            f"best valid {stop_metric} {best}"
        )


class Trainer:
    """Owns the model, optimizer, schedule, data stream and checkpoints of one run.

    With `dist` (one rank of a torchrun job), only rank 0 reads and writes the run folder; the
    other ranks receive its config and checkpoint.
    """

    def __init__(
        self,
        config: Config,
        data_dir: Path,
        run_dir: Path,
        device: str = "auto",
        resume: bool = False,
        dist: Dist | None = None,
    ):
        self.data_dir, self.run_dir = Path(data_dir), Path(run_dir)
        self.dist = dist
        self.is_main = dist is None or dist.is_main
        self.device = resolve_device(device) if dist is None else dist.device
        self.vocab = Vocab.from_data_dir(self.data_dir)
        resume_state = None
        if self.is_main:
            resume_state = rundir.resume_state(self.run_dir, resume, config)
        if resume_state is not None:
            try:
                rundir.check_resume(config, resume_state, self.vocab, self.data_dir)
            except (KeyError, TypeError) as e:
                raise CheckpointError(
                    f"{self.run_dir / 'checkpoints'}: incomplete checkpoint (no {e})"
                ) from None
        if dist is not None:
            config, resume_state = dist.from_main((config, resume_state))
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
        self.checkpoints = (
            CheckpointManager(self.run_dir, t.keep_last, t.keep_best) if self.is_main else None
        )
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
            try:
                self._load_state(resume_state)
            except (KeyError, TypeError, ValueError, RuntimeError) as e:
                raise CheckpointError(
                    f"{self.run_dir / 'checkpoints'}: incomplete or mismatched checkpoint ({e})"
                ) from None
        self.ddp = None
        if dist is not None:
            self.ddp = dist.wrap(self.model)
            # The weights are the same on every rank, the dropout masks should not be. (A
            # checkpoint keeps rank 0's generator; a resumed run draws from the step instead.)
            torch.manual_seed(hash((t.seed, self.step, dist.rank)))
        if self.is_main:
            rundir.prepare(self.run_dir, self.config, self.vocab, self.step)
        self._stop_signal: signal.Signals | None = None
        self._bad_run = torch.zeros((), device=self.device)  # consecutive skipped updates
        self._bad_total = torch.zeros((), device=self.device)

    # ---- checkpoint state ------------------------------------------------------------------
    def _load_state(self, ckpt: Checkpoint) -> None:
        training = ckpt.training
        assert training is not None, "rundir.check_resume refuses translation-only checkpoints"
        self.model.load_state_dict(ckpt.model)
        self.optimizer.load_state_dict(training.optimizer)
        self.schedule.load_state_dict(training.schedule)
        self.batches.load_state_dict(training.sampler)
        self.step, self.best_score = ckpt.step, training.best_score
        self.bad_validations = training.bad_validations
        self.elapsed = training.elapsed
        self.train_seconds, self.train_tokens = training.train_seconds, training.train_tokens
        torch.set_rng_state(training.torch_rng)
        if torch.cuda.is_available() and training.cuda_rng is not None:
            torch.cuda.set_rng_state_all(training.cuda_rng)
        log.info("resumed from step %d", self.step)

    def _state(self) -> Checkpoint:
        training = TrainingState(
            optimizer=self.optimizer.state_dict(),
            schedule=self.schedule.state_dict(),
            sampler=self.batches.state_dict(),
            best_score=self.best_score,
            bad_validations=self.bad_validations,
            elapsed=self.elapsed + time.perf_counter() - self._start,
            train_seconds=self.train_seconds,
            train_tokens=self.train_tokens,
            torch_rng=torch.get_rng_state(),
            cuda_rng=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        )
        return Checkpoint(
            config=self.config.to_dict(),
            vocab=self.vocab.to_state(),
            model=self.model.state_dict(),
            step=self.step,
            training=training,
        )

    # ---- the loop ------------------------------------------------------------------------
    def _batches(self) -> Iterator[list[Batch]]:
        """This rank's groups of `accumulate` batches, already on their way to the device."""
        rank, world_size = (0, 1) if self.dist is None else (self.dist.rank, self.dist.world_size)
        pin = self.device.type == "cuda"
        for group in self.batches.groups(self.config.train.accumulate, rank, world_size):
            yield [(b.pin_memory() if pin else b).to(self.device) for b in group]

    def train_step(self, group: list[Batch]) -> torch.Tensor:
        """One update over `accumulate` batches; returns the summed loss (a device tensor).

        A batch that runs out of device memory is split in two halves and the group is
        computed again from zeroed gradients (a failed backward may have left some behind);
        the loss stays normalized by the whole group's target tokens.
        """
        t = self.config.train
        n_tokens: int | torch.Tensor = sum(b.n_tokens for b in group)
        if self.dist is not None:
            # DDP averages the gradients over the ranks, so each rank divides by the mean
            # tokens per rank: the update is normalized by all its target tokens, as in one process.
            mine = torch.full((), float(n_tokens), device=self.device)  # a fill: no host wait
            n_tokens = self.dist.sum(mine) / self.dist.world_size
        total, failed = self._forward_backward(group, n_tokens)
        while failed is not None:
            group = self._split_after_oom(group, failed)
            total, failed = self._forward_backward(group, n_tokens)
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.clip_norm, foreach=True)
        # Every rank must skip the same updates, and one rank's loss alone can be non-finite.
        loss = total if self.dist is None else self.dist.sum(total.clone())
        found_inf = (~torch.isfinite(norm + loss)).float()  # a non-finite loss or gradient
        self.optimizer.found_inf = found_inf  # type: ignore[attr-defined]  # fused Adam skips on the device
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self._bad_run = (self._bad_run + found_inf) * found_inf  # consecutive non-finite steps
        self._bad_total += found_inf
        return total

    def _batch_loss(self, batch: Batch, label_smoothing: float) -> torch.Tensor:
        """Teacher-forced summed loss of a batch; the generator sees real target positions only.

        While training with `train.scheduled_sampling`, some decoder inputs are the model's own
        predictions; validation (the model in eval mode) is always teacher-forced.
        """
        p = self._sampling_prob() if self.model.training else 0.0
        # Training goes through DDP (its backward syncs the gradients); rank 0 validates alone.
        model = self.ddp if self.ddp is not None and self.model.training else self.model
        with self.autocast:
            outputs = model(batch.src, batch.src_mask, batch.src_lengths, batch.tgt_in, p)
            hidden = outputs.reshape(-1, outputs.size(-1)).index_select(0, batch.target_index)
            return generator_loss(hidden, self.model.generator, batch.targets, label_smoothing)

    def _sampling_prob(self) -> float:
        """Scheduled sampling: rises linearly to train.scheduled_sampling at train.max_steps."""
        t = self.config.train
        return t.scheduled_sampling * min(1.0, self.step / t.max_steps)

    def _forward_backward(
        self, group: list[Batch], n_tokens: int | torch.Tensor
    ) -> tuple[torch.Tensor, int | None]:
        """Accumulate the gradients of a group of batches.

        Args:
            n_tokens: what the summed loss is divided by: the group's target tokens (with DDP,
                a device scalar: the update's target tokens over all ranks / the ranks).

        Returns:
            the summed loss (a device scalar) and the index of the batch that ran out of
            device memory (None when all fit).
        """
        total = torch.zeros((), device=self.device)
        for i, batch in enumerate(group):
            # DDP all-reduces the gradients once, in the backward of the group's last batch.
            last = i == len(group) - 1
            sync = self.ddp.no_sync() if self.ddp is not None and not last else nullcontext()
            try:
                with sync:
                    loss = self._batch_loss(batch, self.config.train.label_smoothing)
                    (loss / n_tokens).backward()
            except torch.OutOfMemoryError:
                return total, i  # handled outside the except block, so its frames are freed
            total += loss.detach()
        return total, None

    def _split_after_oom(self, group: list[Batch], failed: int) -> list[Batch]:
        """The group again, with batch `failed` split in halves; gradients zeroed."""
        if self.dist is not None:  # the other ranks may be all-reducing its gradients already
            raise NmtError(
                f"out of device memory at step {self.step} on rank {self.dist.rank} (a batch of "
                f"{len(group[failed])} sentences); lower train.batch_tokens (with several ranks "
                f"a batch cannot be split and retried)"
            )
        self.optimizer.zero_grad(set_to_none=True)
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        batch = group[failed]
        if len(batch) < 2:
            raise NmtError(
                f"out of device memory at step {self.step} on a single sentence pair "
                f"({batch.src.size(1)} source, {batch.n_tokens} target tokens); lower "
                f"data.max_len or the model size"
            )
        log.warning(
            "step %d: out of device memory on a batch of %d sentences (%d target tokens); "
            "split in two and retried (a lower train.batch_tokens avoids this)",
            self.step,
            len(batch),
            batch.n_tokens,
        )
        halves = [half.to(self.device) for half in batch.split()]
        return [*group[:failed], *halves, *group[failed + 1 :]]

    def train(self) -> TrainResult:
        """Run until max_steps, max_minutes, early stopping or a signal."""
        t = self.config.train
        handler = rundir.log_to_file(self.run_dir) if self.is_main else None  # rank 0 logs for all
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
        bar = TrainProgress(t.max_steps, t.max_minutes, self.step, self._elapsed(), self.is_main)
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
                bar.update(self.step, self._elapsed())
                if self.step % t.log_every == 0:
                    now = time.perf_counter()
                    self.train_seconds += now - window_start
                    loss = window_loss.item() / max(window_tokens, 1)
                    speed = window_tokens / max(now - window_start, 1e-9)
                    lr = self.optimizer.param_groups[0]["lr"]
                    bar.show(loss=f"{loss:.3f}", tok_s=f"{speed:,.0f}", lr=f"{lr:.2e}")
                    log.info("step %d loss %.4f tok/s %.0f lr %.2e", self.step, loss, speed, lr)
                    self._last_loss = loss
                    self._check_bad_steps()
                    window_loss.zero_()
                    window_tokens, window_start = 0, time.perf_counter()
                elapsed = self._elapsed()
                late = t.max_minutes > 0 and elapsed + last_valid_seconds > t.max_minutes * 60
                # A signal to any rank, or any rank out of time, stops every rank.
                signum, out_of_time = self._agree(self._stop_signal or 0, late)
                if signum:  # save now; validation could take long
                    self._save(None)
                    raise TrainingInterrupted(
                        f"{signal.Signals(signum).name}: stopped at step {self.step}; "
                        f"checkpoint saved, continue with --resume"
                    )
                if self.step % t.valid_every == 0 or out_of_time or self.step == t.max_steps:
                    self.train_seconds += time.perf_counter() - window_start
                    v_start = time.perf_counter()
                    improved = self._validate_and_save()
                    last_valid_seconds = time.perf_counter() - v_start
                    window_tokens, window_start = 0, time.perf_counter()
                    window_loss.zero_()
                    # No time left for another validation: stop on the one just made
                    # rather than validating again a step later.
                    budget = t.max_minutes * 60
                    over = out_of_time or (budget and self._elapsed() + last_valid_seconds > budget)
                    if self._agree(bool(over))[0]:
                        stop = "max_minutes"
                        break
                    if t.patience and not improved and self.bad_validations >= t.patience:
                        stop = "early stopping"
                        break
        finally:
            bar.close()
            for s, h in old_handlers.items():
                signal.signal(s, h)
            if handler is not None:
                logging.getLogger("nmt_cli").removeHandler(handler)
                handler.close()
        result = TrainResult(
            steps=self.step,
            best_score=self.best_score,
            minutes=self._elapsed() / 60,
            tokens_per_second=self.train_tokens / max(self.train_seconds, 1e-9),
            stopped_because=stop,
            rank=0 if self.dist is None else self.dist.rank,
            ranks=1 if self.dist is None else self.dist.world_size,
        )
        log.info(
            "done after %d steps (%s): %.1f min, %.0f target tokens/s",
            result.steps,
            stop,
            result.minutes,
            result.tokens_per_second,
        )
        return result

    def _agree(self, *values: int) -> list[int]:
        """The largest of each value over the ranks, so that all of them decide alike.

        A collective under torchrun: it waits for every rank. Alone, the values as they are.
        """
        return list(values) if self.dist is None else self.dist.max(values)

    def _save(self, score: float | None) -> None:
        """Write a checkpoint; under torchrun rank 0 writes it and the others wait for it."""
        if self.checkpoints is not None:
            self.checkpoints.save(self._state(), self.step, score)
        if self.dist is not None:
            self.dist.barrier()

    def _elapsed(self) -> float:
        return self.elapsed + time.perf_counter() - self._start

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self._stop_signal:  # second signal: give up at once
            raise KeyboardInterrupt
        self._stop_signal = signal.Signals(signum)
        log.warning("%s received: saving a checkpoint after this step", self._stop_signal.name)

    def _check_bad_steps(self) -> None:
        bad_total, bad_run = int(self._bad_total.item()), int(self._bad_run.item())
        if bad_total:
            log.warning("%d updates skipped so far (non-finite loss or gradients)", bad_total)
        if bad_run >= self.config.train.max_bad_steps:
            last = self.run_dir / "checkpoints" / "last.pt"
            kept = (
                f"the last good checkpoint is {last}"
                if last.exists()
                else "no checkpoint was written yet"
            )
            raise NmtError(
                f"training diverged: {bad_run} non-finite losses in a row at step {self.step}; "
                f"{kept} (try a lower train.lr)"
            )

    # ---- validation ------------------------------------------------------------------------
    @torch.inference_mode()
    def validate(self) -> dict[str, float]:
        """Perplexity (no smoothing) and BLEU of the current model on the valid split."""
        self.model.eval()
        total_loss, total_tokens = torch.zeros((), device=self.device), 0
        for batch in eval_batches(self.valid_split, self.config.train.batch_tokens * 2):
            batch = batch.to(self.device)
            total_loss += self._batch_loss(batch, label_smoothing=0.0)
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
        """Validate and save a checkpoint; under torchrun rank 0 does both for every rank."""
        metrics = self.validate() if self.is_main else {}
        if self.dist is not None:  # the best score, patience and learning rate stay the same
            metrics = self.dist.from_main(metrics)
        metric = self.config.train.stop_metric
        score = score_from_metric(metrics[f"valid_{metric}"], metric)
        improved = self.best_score is None or score > self.best_score
        if improved:
            self.best_score, self.bad_validations = score, 0
        else:
            self.bad_validations += 1
        self.schedule.on_validation(score)
        if not self.is_main:
            self._save(score)  # waits for rank 0's checkpoint
            return improved
        row = {
            "step": self.step,
            "minutes": round(self._elapsed() / 60, 3),
            "train_loss": round(getattr(self, "_last_loss", float("nan")), 4),
            "valid_ppl": round(metrics["valid_ppl"], 3),
            "valid_bleu": round(metrics["valid_bleu"], 2),
            "lr": self.optimizer.param_groups[0]["lr"],
            "tokens_per_s": round(self.train_tokens / max(self.train_seconds, 1e-9), 1),
        }
        try:
            with open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
        except OSError as e:
            path = self.run_dir / "metrics.jsonl"
            raise NmtError(f"{path}: cannot write ({e.strerror or e})") from None
        log.info(
            "validation at step %d: ppl %.2f BLEU %.2f%s",
            self.step,
            row["valid_ppl"],
            row["valid_bleu"],
            " (best)" if improved else "",
        )
        self._save(score)
        return improved


def train(
    config: Config, data_dir: Path, run_dir: Path, device: str = "auto", resume: bool = False
) -> TrainResult:
    """Train a model on a preprocessed data folder into a run folder (the library entry point).

    Under torchrun (WORLD_SIZE set), this process trains as one rank of the job.
    """
    with process_group(resolve_device(device)) as dist:
        return Trainer(config, data_dir, run_dir, device, resume, dist).train()
