"""The Trainer: builds a run (data, model, optimizer, schedule, resume) and runs its loop.

The hot loop never waits for the device: token counts come from the host-built batch, the
loss is read back only every `log_every` steps, and a non-finite loss or gradient skips its
update on the device (the fused Adam's `found_inf`), counted and checked at the same interval.

Under torchrun each rank trains on its own share of every update's batches and DDP sums the
gradients; rank 0 validates, logs and writes checkpoints, and every decision to stop is taken
by all ranks together (see `nmt_cli.distributed`).
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch

from nmt_cli import rundir
from nmt_cli.checkpoint import Checkpoint, TrainingState
from nmt_cli.checkpoint_manager import CheckpointManager
from nmt_cli.config import Config
from nmt_cli.corpus import EncodedSplit, Vocab
from nmt_cli.data import Batch, TrainBatches
from nmt_cli.device import resolve_device
from nmt_cli.distributed import Dist
from nmt_cli.errors import CheckpointError, DataError
from nmt_cli.model import Seq2Seq
from nmt_cli.progress import TrainProgress
from nmt_cli.schedule import LRSchedule
from nmt_cli.training.build import build_model_and_optimizer
from nmt_cli.training.metrics import MetricsLog
from nmt_cli.training.oom import accumulate_gradients
from nmt_cli.training.result import TrainResult, finish
from nmt_cli.training.state import TrainState, Window
from nmt_cli.training.stopping import StopPolicy, ValidationCut, budget_left, interrupted
from nmt_cli.training.update import SkippedUpdates, batch_loss, scheduled_sampling_prob
from nmt_cli.training.validator import Validator, ValidMetrics, score_of

log = logging.getLogger(__name__)


def resume_checkpoint(
    config: Config, run_dir: Path, resume: bool, vocab: Vocab, data_dir: Path, dist: Dist | None
) -> tuple[Config, Checkpoint | None]:
    """The run's config and the checkpoint to resume from (None: a new run), on every rank.

    Rank 0 reads and checks them, then finishes a save a crash interrupted; under torchrun
    the other ranks receive rank 0's.
    """
    state = None
    if dist is None or dist.is_main:
        newest = rundir.resume_state(run_dir, resume)
        if newest is not None:  # every check first: a refused resume changes nothing
            rundir.check_resume(config, newest.checkpoint, vocab, data_dir)
            rundir.check_writable(run_dir)
            t = config.train
            CheckpointManager(run_dir, t.keep_last, t.keep_best).adopt(newest)
            state = newest.checkpoint
    if dist is not None:
        config, state = dist.from_main((config, state))
    return config, state


def load_train_batches(data_dir: Path, config: Config) -> TrainBatches:
    """The training stream of a data folder's train split (memory-mapped)."""
    t = config.train
    split = EncodedSplit.open(data_dir, "train")
    try:
        return TrainBatches(split, t.batch_tokens, config.data.max_len, t.seed)
    except ValueError as e:
        raise DataError(f"{data_dir}: train: {e}") from None


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
        self.state = TrainState()  # the run's clock starts now: the budget covers loading too
        self.data_dir, self.run_dir = Path(data_dir), Path(run_dir)
        self.dist = dist
        self.is_main = dist is None or dist.is_main
        self.device = resolve_device(device) if dist is None else dist.device
        self.vocab = Vocab.from_data_dir(self.data_dir)
        config, resume_from = resume_checkpoint(
            config, self.run_dir, resume, self.vocab, self.data_dir, dist
        )
        self.config, t = config, config.train
        torch.manual_seed(t.seed)
        self.batches = load_train_batches(self.data_dir, config)
        self.autocast = (
            torch.autocast(self.device.type, dtype=torch.bfloat16)
            if t.precision == "bf16"
            else nullcontext()
        )
        self.validator = Validator.load(
            self.data_dir, self.vocab.tgt, config, self.device, self.autocast
        )
        self.model, self.optimizer = build_model_and_optimizer(config, self.vocab, self.device)
        self.schedule = LRSchedule(self.optimizer, t)
        self.checkpoints = (
            CheckpointManager(self.run_dir, t.keep_last, t.keep_best) if self.is_main else None
        )
        if resume_from is not None:
            try:
                self.restore(resume_from)
            except (ValueError, RuntimeError) as e:  # weights or states of another shape
                raise CheckpointError(
                    f"{self.run_dir / 'checkpoints'}: mismatched checkpoint ({e})"
                ) from None
            budget_left(t.max_minutes, self.state.elapsed_before)
        self.ddp = None
        if dist is not None:
            self.ddp = dist.wrap(self.model)
            # The weights are the same on every rank, the dropout masks should not be. (A
            # checkpoint keeps rank 0's generator; a resumed run draws from the step instead.)
            torch.manual_seed(hash((t.seed, self.state.step, dist.rank)))
        if self.is_main:
            rundir.prepare(self.run_dir, config, self.vocab, self.state.step)
        n_params = sum(p.numel() for p in self.model.parameters())
        # weights and Adam's two moments, in fp32
        self.stop = StopPolicy(t, self.state, self.validator.target_tokens(), 12 * n_params)
        self.window = Window(self.state, self.device)
        self.skipped = SkippedUpdates(self.device, t.max_bad_steps)
        self.metrics = MetricsLog(self.run_dir / "metrics.jsonl")

    # ---- checkpoint state ------------------------------------------------------------------
    def checkpoint(self) -> Checkpoint:
        """Everything a checkpoint holds: the model, and the state to resume training."""
        counters = self.state.state_dict()
        step = counters.pop("step")
        training = TrainingState(
            optimizer=self.optimizer.state_dict(),
            schedule=self.schedule.state_dict(),
            sampler=self.batches.state_dict(),
            torch_rng=torch.get_rng_state(),
            cuda_rng=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            **counters,
        )
        return Checkpoint(
            config=self.config.to_dict(),
            vocab=self.vocab.to_state(),
            model=self.model.state_dict(),
            step=step,
            training=training,
        )

    def restore(self, ckpt: Checkpoint) -> None:
        """Continue from a training checkpoint (as `checkpoint` wrote it)."""
        training = ckpt.training
        assert training is not None, "rundir.check_resume refuses translation-only checkpoints"
        self.model.load_state_dict(ckpt.model)
        self.optimizer.load_state_dict(training.optimizer)
        self.schedule.load_state_dict(training.schedule)
        self.batches.load_state_dict(training.sampler)
        self.state.load_state_dict({"step": ckpt.step, **vars(training)})
        torch.set_rng_state(training.torch_rng)
        if torch.cuda.is_available() and training.cuda_rng is not None:
            torch.cuda.set_rng_state_all(training.cuda_rng)
        log.info("resumed from step %d", self.state.step)

    # ---- the loop ------------------------------------------------------------------------
    def train(self) -> TrainResult:
        """Run until max_steps, max_minutes, early stopping or a signal."""
        state, stop = self.state, self.stop
        stopped_because = "max_steps"
        with session(self) as bar:
            groups = self.groups()
            while state.step < stop.max_steps:
                group = next(groups)
                state.step += 1
                self.schedule.step(state.step)
                tokens = sum(b.n_tokens for b in group)
                self.window.add(self.train_step(group), tokens)
                stop.step_done(tokens)
                bar.update(state.step, state.elapsed())
                if state.step % self.config.train.log_every == 0:
                    self._report(bar)
                # A signal to any rank, or any rank out of time, stops every rank.
                signum, out_of_time = self._agree(stop.signals.received or 0, stop.out_of_time())
                if signum:  # save now; validation could take long
                    self._save(None)
                    raise interrupted(signal.Signals(signum).name, state.step)
                if stop.validate_now(bool(out_of_time)):
                    self.window.close()
                    cut = self._validate_and_save(bar)
                    self.window.reopen()
                    if cut is not None and cut != "max_minutes":  # a signal: saved, stop
                        raise interrupted(cut, state.step, "during the validation ")
                    # No time left for another validation: stop on the one just made
                    # rather than validating again a step later.
                    if cut or self._agree(out_of_time or stop.out_of_time())[0]:
                        stopped_because = "max_minutes"
                        break
                    if stop.early_stop():
                        stopped_because = "early stopping"
                        break
            # inside the session, so that train.log has the warning and the summary
            return finish(self.state, stopped_because, self.dist, self.config.train.stop_metric)

    def groups(self) -> Iterator[list[Batch]]:
        """This rank's groups of `accumulate` batches, already on their way to the device."""
        rank, world_size = (0, 1) if self.dist is None else (self.dist.rank, self.dist.world_size)
        pin = self.device.type == "cuda"
        for group in self.batches.groups(self.config.train.accumulate, rank, world_size):
            yield [(b.pin_memory() if pin else b).to(self.device) for b in group]

    def train_step(self, group: list[Batch]) -> torch.Tensor:
        """One update over `accumulate` batches; returns the summed loss (a device tensor)."""
        t = self.config.train
        n_tokens: int | torch.Tensor = sum(b.n_tokens for b in group)
        if self.dist is not None:
            # DDP averages the gradients over the ranks, so each rank divides by the mean
            # tokens per rank: the update is normalized by all its target tokens, as in one process.
            mine = torch.full((), float(n_tokens), device=self.device)  # a fill: no host wait
            n_tokens = self.dist.sum(mine) / self.dist.world_size
        p = scheduled_sampling_prob(t, self.state.step) if self.model.training else 0.0
        total = accumulate_gradients(
            group,
            n_tokens,
            lambda batch: batch_loss(
                self.model, batch, t.label_smoothing, p, self.autocast, self.ddp
            ),
            self.optimizer,
            self.ddp,
            self.state.step,
        )
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.clip_norm, foreach=True)
        # Every rank must skip the same updates, and one rank's loss alone can be non-finite.
        loss = total if self.dist is None else self.dist.sum(total.clone())
        found_inf = (~torch.isfinite(norm + loss)).float()  # a non-finite loss or gradient
        self.optimizer.found_inf = found_inf  # type: ignore[attr-defined]  # fused Adam skips on the device
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.skipped.add(found_inf)
        return total

    def _validate_and_save(self, bar: TrainProgress) -> str | None:
        """Validate and save a checkpoint; under torchrun rank 0 does both for every rank.

        Returns why the validation was cut short (a signal's name, or "max_minutes"), then
        saving the checkpoint without a score; None when it ran to its end.
        """
        outcome = (
            validate(self.validator, self.model, self.stop, bar, self.state.step)
            if self.is_main
            else None
        )
        if self.dist is not None:  # the best score, patience and learning rate stay the same
            outcome = self.dist.from_main(outcome)
        assert outcome is not None
        if isinstance(outcome, str):
            self._save(None)
            return outcome
        metrics = outcome
        score = score_of(metrics, self.config.train.stop_metric)
        improved = self.state.record(score)
        self.schedule.on_validation(improved)
        if self.is_main:
            self.metrics.validation(
                self.state.step,
                self.state.elapsed(),
                self.window.last_loss,
                metrics,
                self.optimizer.param_groups[0]["lr"],
                self.state.tokens_per_second(),
            )
            best = {self.config.train.stop_metric: " (best)" if improved else ""}
            log.info(
                "validation at step %d: ppl %.2f%s BLEU %.2f%s, %.1f s",
                self.state.step,
                round(metrics.ppl, 3),
                best.get("ppl", ""),  # the mark follows the metric that decides "best"
                round(metrics.bleu, 2),
                best.get("bleu", ""),
                self.stop.valid_seconds or 0.0,
            )
        self._save(score)  # under torchrun, the other ranks wait for rank 0's checkpoint
        return None

    # ---- around the loop -------------------------------------------------------------------
    def _report(self, bar: TrainProgress) -> None:
        """The progress line of the steps since the last one; checks for skipped updates."""
        loss, speed = self.window.report()
        lr = self.optimizer.param_groups[0]["lr"]
        bar.show(loss=f"{loss:.3f}", tok_s=f"{speed:,.0f}", lr=f"{lr:.2e}")
        log.info("step %d loss %.4f tok/s %.0f lr %.2e", self.state.step, loss, speed, lr)
        if self.is_main:
            self.metrics.training(
                self.state.step, self.state.elapsed(), loss, lr, self.state.tokens_per_second()
            )
        self.skipped.check(self.state.step, self.run_dir / "checkpoints" / "last.pt")

    def _agree(self, *values: int) -> list[int]:
        """The largest of each value over the ranks, so that all of them decide alike.

        A collective under torchrun: it waits for every rank. Alone, the values as they are.
        """
        return list(values) if self.dist is None else self.dist.max(values)

    def _save(self, score: float | None) -> None:
        """Write a checkpoint; under torchrun rank 0 writes it and the others wait for it."""
        if self.checkpoints is not None:
            with self.stop.timing_save():
                self.checkpoints.save(self.checkpoint(), self.state.step, score)
        if self.dist is not None:
            self.dist.barrier()


def validate(
    validator: Validator, model: Seq2Seq, stop: StopPolicy, bar: TrainProgress, step: int
) -> ValidMetrics | str:
    """Rank 0's validation, timed and shown on the bar; a str: why it was cut short."""

    def progress(what: str, done: int, total: int) -> None:
        bar.validating(what, done, total, stop.state.elapsed())
        reason = stop.cut_validation()  # a signal, or the end of the budget
        if reason is not None:
            raise ValidationCut(reason)

    try:
        with stop.timing_validation():
            return validator(model, progress)
    except ValidationCut as cut:
        log.warning("validation at step %d cut short (%s)", step, cut.reason)
        return cut.reason
    finally:
        bar.training()


@contextmanager
def session(trainer: Trainer) -> Iterator[TrainProgress]:
    """For the loop's duration: the log file, the signal handlers and the progress bar."""
    t, state = trainer.config.train, trainer.state
    # rank 0 logs for all
    handler = rundir.log_to_file(trainer.run_dir) if trainer.is_main else None
    try:
        with trainer.stop.signals.installed():
            n_params = sum(p.numel() for p in trainer.model.parameters())
            log.info(
                "training on %s: %s parameters, %d training pairs (%d over data.max_len skipped)",
                trainer.device,
                f"{n_params:,}",
                trainer.batches.n_candidates,
                trainer.batches.skipped,
            )
            bar = TrainProgress(
                t.max_steps, t.max_minutes, state.step, state.elapsed(), trainer.is_main
            )
            try:
                trainer.model.train()
                yield bar
            finally:
                bar.close()
    finally:
        if handler is not None:
            logging.getLogger("nmt_cli").removeHandler(handler)
            handler.close()
