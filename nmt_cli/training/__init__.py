"""Training in small parts; `nmt_cli.train.train` is the entry point.

- `state`: `TrainState`, the counters and best score a checkpoint carries, and the window of
  steps since the last progress line.
- `update`: the loss of one batch, the scheduled-sampling rate, skipped non-finite updates.
- `oom`: gradient accumulation over a group of batches, splitting a batch that runs out of
  device memory.
- `validator`: perplexity and BLEU on the valid split, and the score they give.
- `stopping`: when training stops (steps, the time budget, signals, early stopping).
- `metrics`: the metrics.jsonl writer.
- `trainer`: `Trainer`, which builds the run and ties the parts together in its loop.
"""
