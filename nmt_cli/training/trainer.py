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
from dataclasses import dataclass
from pathlib import Path

import torch

from nmt_cli import rundir
from nmt_cli.checkpoint import Checkpoint, TrainingState, metric_from_score
from nmt_cli.checkpoint_manager import CheckpointManager
from nmt_cli.config import Config
from nmt_cli.corpus import EncodedSplit, Vocab
from nmt_cli.data import Batch, TrainBatches
from nmt_cli.device import resolve_device
from nmt_cli.distributed import Dist
from nmt_cli.errors import CheckpointError, DataError, TrainingInterrupted
from nmt_cli.model import Seq2Seq, build_model, init_weights
from nmt_cli.progress import TrainProgress
from nmt_cli.schedule import LRSchedule
from nmt_cli.training.metrics import MetricsLog
from nmt_cli.training.oom import accumulate_gradients
from nmt_cli.training.state import TrainState, Window
from nmt_cli.training.stopping import StopPolicy
from nmt_cli.training.update import SkippedUpdates, batch_loss, scheduled_sampling_prob
from nmt_cli.training.validator import Validator, score_of

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    steps: int
    best_score: float | None
    minutes: float
    tokens_per_second: float  # of rank 0 when there are several ranks
    stopped_because: str  # "max_steps", "max_minutes" or "early stopping"
    rank: int = 0
    ranks: int = 1

    def summary(self, stop_metric: str) -> str:
        """The line `nmt train` prints at the end (`stop_metric` names the best score)."""
        best = "n/a"
        if self.best_score is not None:  # scores are higher-is-better: -ppl for perplexity
            best = f"{metric_from_score(self.best_score, stop_metric):.2f}"
        per_rank = f" per rank ({self.ranks} ranks)" if self.ranks > 1 else ""
        return (
            f"steps {self.steps} ({self.stopped_because}), {self.minutes:.1f} min, "
            f"{self.tokens_per_second:,.0f} target tokens/s{per_rank}, "
            f"best valid {stop_metric} {best}"
        )


def resume_checkpoint(
    config: Config, run_dir: Path, resume: bool, vocab: Vocab, data_dir: Path, dist: Dist | None
) -> tuple[Config, Checkpoint | None]:
    """The run's config and the checkpoint to resume from (None: a new run), on every rank.

    Rank 0 reads and checks them; under torchrun the other ranks receive rank 0's.
    """
    state = None
    if dist is None or dist.is_main:
        state = rundir.resume_state(run_dir, resume, config)
    if state is not None:
        rundir.check_resume(config, state, vocab, data_dir)
    if dist is not None:
        config, state = dist.from_main((config, state))
    return config, state


def load_train_batches(data_dir: Path, config: Config) -> TrainBatches:
    """The training stream of a data folder's train.pt."""
    t = config.train
    split = EncodedSplit.load(data_dir / "train.pt")
    try:
        return TrainBatches(split, t.batch_tokens, config.data.max_len, t.seed)
    except ValueError as e:
        raise DataError(f"{data_dir / 'train.pt'}: {e}") from None


def build_model_and_optimizer(
    config: Config, vocab: Vocab, device: torch.device
) -> tuple[Seq2Seq, torch.optim.Optimizer]:
    """The model, initialized (from the global RNG), on the device, and its optimizer."""
    model = build_model(
        config.model,
        vocab.src.vocab_size,
        vocab.tgt.vocab_size,
        vocab.joint,
        config.data.reverse_source,
    ).to(device)
    init_weights(model, config.train.init_scale)
    t = config.train
    optimizer = torch.optim.Adam(
        model.parameters(), lr=t.lr, betas=t.adam_betas, weight_decay=t.weight_decay, fused=True
    )
    return model, optimizer


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
        self.state = TrainState()
        if resume_from is not None:
            try:
                self.restore(resume_from)
            except (ValueError, RuntimeError) as e:  # weights or states of another shape
                raise CheckpointError(
                    f"{self.run_dir / 'checkpoints'}: mismatched checkpoint ({e})"
                ) from None
        self.ddp = None
        if dist is not None:
            self.ddp = dist.wrap(self.model)
            # The weights are the same on every rank, the dropout masks should not be. (A
            # checkpoint keeps rank 0's generator; a resumed run draws from the step instead.)
            torch.manual_seed(hash((t.seed, self.state.step, dist.rank)))
        if self.is_main:
            rundir.prepare(self.run_dir, config, self.vocab, self.state.step)
        self.stop = StopPolicy(t, self.state)
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
        with self._session() as bar:
            groups = self.groups()
            while state.step < stop.max_steps:
                group = next(groups)
                state.step += 1
                self.schedule.step(state.step)
                self.window.add(self.train_step(group), sum(b.n_tokens for b in group))
                bar.update(state.step, state.elapsed())
                if state.step % self.config.train.log_every == 0:
                    self._report(bar)
                # A signal to any rank, or any rank out of time, stops every rank.
                signum, out_of_time = self._agree(stop.signals.received or 0, stop.out_of_time())
                if signum:  # save now; validation could take long
                    self._save(None)
                    raise TrainingInterrupted(
                        f"{signal.Signals(signum).name}: stopped at step {state.step}; "
                        f"checkpoint saved, continue with --resume"
                    )
                if stop.validate_now(bool(out_of_time)):
                    self.window.close()
                    with stop.timing_validation():
                        self._validate_and_save()
                    self.window.reopen()
                    # No time left for another validation: stop on the one just made
                    # rather than validating again a step later.
                    if self._agree(out_of_time or stop.out_of_time())[0]:
                        stopped_because = "max_minutes"
                        break
                    if stop.early_stop():
                        stopped_because = "early stopping"
                        break
        return finish(self.state, stopped_because, self.dist)

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

    def _validate_and_save(self) -> None:
        """Validate and save a checkpoint; under torchrun rank 0 does both for every rank."""
        metrics = self.validator(self.model) if self.is_main else None
        if self.dist is not None:  # the best score, patience and learning rate stay the same
            metrics = self.dist.from_main(metrics)
        assert metrics is not None
        score = score_of(metrics, self.config.train.stop_metric)
        improved = self.state.record(score)
        self.schedule.on_validation(improved)
        if self.is_main:
            self.metrics.write(
                self.state.step,
                self.state.elapsed(),
                self.window.last_loss,
                metrics,
                self.optimizer.param_groups[0]["lr"],
                self.state.tokens_per_second(),
            )
            log.info(
                "validation at step %d: ppl %.2f BLEU %.2f%s",
                self.state.step,
                round(metrics.ppl, 3),
                round(metrics.bleu, 2),
                " (best)" if improved else "",
            )
        self._save(score)  # under torchrun, the other ranks wait for rank 0's checkpoint

    # ---- around the loop -------------------------------------------------------------------
    @contextmanager
    def _session(self) -> Iterator[TrainProgress]:
        """For the loop's duration: the log file, the signal handlers and the progress bar."""
        t, state = self.config.train, self.state
        handler = rundir.log_to_file(self.run_dir) if self.is_main else None  # rank 0 logs for all
        try:
            with self.stop.signals.installed():
                state.start_clock()
                n_params = sum(p.numel() for p in self.model.parameters())
                log.info(
                    "training on %s: %s parameters, %d training pairs "
                    "(%d over data.max_len skipped)",
                    self.device,
                    f"{n_params:,}",
                    len(self.batches.candidates),
                    self.batches.skipped,
                )
                bar = TrainProgress(
                    t.max_steps, t.max_minutes, state.step, state.elapsed(), self.is_main
                )
                try:
                    self.model.train()
                    yield bar
                finally:
                    bar.close()
        finally:
            if handler is not None:
                logging.getLogger("nmt_cli").removeHandler(handler)
                handler.close()

    def _report(self, bar: TrainProgress) -> None:
        """The progress line of the steps since the last one; checks for skipped updates."""
        loss, speed = self.window.report()
        lr = self.optimizer.param_groups[0]["lr"]
        bar.show(loss=f"{loss:.3f}", tok_s=f"{speed:,.0f}", lr=f"{lr:.2e}")
        log.info("step %d loss %.4f tok/s %.0f lr %.2e", self.state.step, loss, speed, lr)
        self.skipped.check(self.state.step, self.run_dir / "checkpoints" / "last.pt")

    def _agree(self, *values: int) -> list[int]:
        """The largest of each value over the ranks, so that all of them decide alike.

        A collective under torchrun: it waits for every rank. Alone, the values as they are.
        """
        return list(values) if self.dist is None else self.dist.max(values)

    def _save(self, score: float | None) -> None:
        """Write a checkpoint; under torchrun rank 0 writes it and the others wait for it."""
        if self.checkpoints is not None:
            self.checkpoints.save(self.checkpoint(), self.state.step, score)
        if self.dist is not None:
            self.dist.barrier()


def finish(state: TrainState, stopped_because: str, dist: Dist | None) -> TrainResult:
    """The result of a run that stopped, logged in one line."""
    result = TrainResult(
        steps=state.step,
        best_score=state.best_score,
        minutes=state.elapsed() / 60,
        tokens_per_second=state.tokens_per_second(),
        stopped_because=stopped_because,
        rank=0 if dist is None else dist.rank,
        ranks=1 if dist is None else dist.world_size,
    )
    log.info(
        "done after %d steps (%s): %.1f min, %.0f target tokens/s",
        result.steps,
        stopped_because,
        result.minutes,
        result.tokens_per_second,
    )
    return result
