"""Typed, strict configuration: YAML -> frozen dataclasses, with `--set a.b=value` overrides.

Every key is checked: an unknown key names the closest valid one, a value of the wrong type or
out of range is an error, and cross-field rules live in `Config.validate`. Nothing is ignored.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import reprlib
import types
import typing
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from nmt_cli.errors import ConfigError
from nmt_cli.names import ATTENTIONS, BRIDGES, CELLS, TRAINING_PRECISIONS

SCHEDULES = ("constant", "plateau", "inverse_sqrt")
STOP_METRICS = ("bleu", "ppl")
MAX_SEED = 2**64 - 1  # torch.manual_seed takes 64 bits
_MAX_ALIASES = 100  # YAML aliases (*name) per document: nested ones multiply

# A value quoted in an error message is cut to this (a 1 KB file of nested aliases would
# otherwise print gigabytes).
_SHOW = reprlib.Repr()
_SHOW.maxstring = _SHOW.maxother = _SHOW.maxlong = 60
_SHOW.maxlevel, _SHOW.maxlist, _SHOW.maxtuple, _SHOW.maxdict = 2, 4, 4, 4


def show(value: Any) -> str:
    """`repr(value)`, cut short: at most about 60 characters per value, 4 items, 2 levels."""
    return _SHOW.repr(value)


class _Loader(yaml.SafeLoader):
    """YAML 1.1 safe loading, with `1e-3` read as a float (YAML 1.1 wants `1.0e-3`) and a
    bound on aliases."""

    aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > _MAX_ALIASES:
                raise ConfigError(f"more than {_MAX_ALIASES} YAML aliases (*name); write it out")
        return super().compose_node(parent, index)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*\.?[0-9_]*|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def parse_yaml(text: str) -> Any:
    """One YAML document (see `_Loader`).

    Raises:
        ConfigError: too many aliases; yaml.YAMLError or ValueError for bad YAML (e.g. an
            integer of more than 4,300 digits).
    """
    return yaml.load(text, Loader=_Loader)  # a SafeLoader: builds no objects but plain data


@dataclass(frozen=True)
class DataConfig:
    """How training reads the encoded corpus."""

    reverse_source: bool = False  # feed the source backwards (Sutskever et al., 2014)
    max_len: int = 100  # training pairs longer than this (in pieces) are skipped


@dataclass(frozen=True)
class ModelConfig:
    """The encoder-decoder architecture."""

    cell: str = "lstm"
    emb_size: int = 256
    enc_hidden: int = 512  # encoder output size; split over the two directions when bidirectional
    enc_layers: int = 1
    bidirectional: bool = True
    dec_hidden: int = 512
    dec_layers: int = 1
    attention: str = "general"
    attn_hidden: int = 512  # hidden size of the concat / bahdanau scoring layer
    input_feeding: bool = True
    bridge: str = "copy"  # encoder final state -> decoder initial state
    dropout: float = 0.3  # on RNN outputs and the attentional vector
    emb_dropout: float = 0.3
    word_dropout: float = 0.0  # probability of replacing a source/target input token by <unk>
    share_embeddings: bool = False  # one embedding table for source and target (joint vocab)
    tie_output: bool = False  # output layer weights = target embeddings


@dataclass(frozen=True)
class TrainConfig:
    """Optimization, schedules, validation and checkpointing."""

    batch_tokens: int = 2048  # budget per batch: sentences x longest side, after bucketing
    max_steps: int = 100_000
    max_minutes: float = 0.0  # wall-clock budget, validation included; 0 = none
    lr: float = 0.001
    schedule: str = "constant"
    warmup_steps: int = 1000  # inverse_sqrt
    plateau_factor: float = 0.5
    plateau_patience: int = 2  # validations without improvement before the lr is cut
    min_lr: float = 1e-5
    label_smoothing: float = 0.1
    # Scheduled sampling: the probability of feeding the model's own previous prediction
    # instead of the reference token rises linearly from 0 at step 0 to this value at
    # max_steps (per token; validation stays teacher-forced). 0 = pure teacher forcing.
    scheduled_sampling: float = 0.0
    clip_norm: float = 5.0
    adam_betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    init_scale: float = 0.1  # uniform(-s, s) initialization of all weights
    precision: str = "fp32"
    accumulate: int = 1  # gradient accumulation: batches per update
    valid_every: int = 500  # steps
    valid_beam: int = 1  # beam size for validation BLEU
    stop_metric: str = "bleu"
    patience: int = 0  # validations without improvement before stopping; 0 = never stop early
    keep_last: int = 2
    keep_best: int = 2
    log_every: int = 50
    max_bad_steps: int = 10  # non-finite losses in a row before training gives up
    seed: int = 1


@dataclass(frozen=True)
class DecodeConfig:
    """Defaults for translation (the translate command's flags override them)."""

    beam: int = 5
    alpha: float = 1.0  # GNMT length penalty exponent; 0 = raw log-probability
    max_len_a: float = 1.5  # output length limit = a * source length + b
    max_len_b: int = 10
    batch_size: int = 64
    max_src_len: int = 200  # longer inputs are split into pieces of at most this length
    no_repeat_ngram: int = 0  # block repeated n-grams of this size; 0 = off (nmt_cli.repetition)
    coverage_penalty: float = 0.0  # GNMT coverage penalty beta; 0 = off


@dataclass(frozen=True)
class Config:
    """The whole configuration, as saved with every run and checkpoint."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)

    def validate(self) -> Config:
        """Check value ranges and cross-field rules; returns self so calls can chain."""
        m, t = self.model, self.train
        _choice("model.cell", m.cell, CELLS)
        _choice("model.attention", m.attention, ATTENTIONS)
        _choice("model.bridge", m.bridge, BRIDGES)
        _choice("train.schedule", t.schedule, SCHEDULES)
        _choice("train.precision", t.precision, TRAINING_PRECISIONS)
        _choice("train.stop_metric", t.stop_metric, STOP_METRICS)
        _check_numbers(self)
        positive = [
            "data.max_len",
            "model.emb_size",
            "model.enc_hidden",
            "model.enc_layers",
            "model.dec_hidden",
            "model.dec_layers",
            "model.attn_hidden",
            "train.batch_tokens",
            "train.max_steps",
            "train.lr",
            "train.accumulate",
            "train.valid_every",
            "train.valid_beam",
            "train.log_every",
            "train.max_bad_steps",
            "train.keep_last",
            "decode.beam",
            "decode.batch_size",
            "decode.max_src_len",
        ]
        values = dict(_leaves(self))
        for name in positive:
            if values[name] <= 0:
                raise ConfigError(f"{name} must be positive (got {values[name]})")
        for name in ("model.dropout", "model.emb_dropout", "model.word_dropout"):
            if not 0.0 <= values[name] < 1.0:
                raise ConfigError(f"{name} must be in [0, 1) (got {values[name]})")
        if not 0.0 <= t.label_smoothing < 1.0:
            raise ConfigError(f"train.label_smoothing must be in [0, 1) (got {t.label_smoothing})")
        if not 0.0 <= t.scheduled_sampling <= 1.0:
            raise ConfigError(
                f"train.scheduled_sampling must be in [0, 1] (got {t.scheduled_sampling})"
            )
        if m.bidirectional and m.enc_hidden % 2:
            raise ConfigError(f"model.enc_hidden must be even when bidirectional ({m.enc_hidden})")
        if m.bridge == "copy" and m.enc_hidden != m.dec_hidden:
            raise ConfigError(
                f"model.bridge: copy needs enc_hidden == dec_hidden "
                f"({m.enc_hidden} != {m.dec_hidden}); use bridge: linear"
            )
        if m.attention == "dot" and m.enc_hidden != m.dec_hidden:
            raise ConfigError(
                f"model.attention: dot needs enc_hidden == dec_hidden "
                f"({m.enc_hidden} != {m.dec_hidden}); use general"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (tuples as lists), ready for YAML or a checkpoint."""
        return _plain(dataclasses.asdict(self))

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _check_numbers(config: Config) -> None:
    """Every number (tuples' too) finite and not negative, the seed 64 bits, the Adam betas
    below 1; the key named otherwise."""
    for name, value in _leaves(config):
        for number in value if isinstance(value, tuple) else (value,):
            if isinstance(number, float) and not math.isfinite(number):
                raise ConfigError(f"{name} must be a finite number (got {number})")
            if isinstance(number, (int, float)) and not isinstance(number, bool) and number < 0:
                raise ConfigError(f"{name} must not be negative (got {show(number)})")
    t = config.train
    if t.seed > MAX_SEED:
        raise ConfigError(f"train.seed must be below 2**64 (got {show(t.seed)})")
    if not all(beta < 1.0 for beta in t.adam_betas):
        raise ConfigError(f"train.adam_betas must both be in [0, 1) (got {list(t.adam_betas)})")


def _leaves(config: Config) -> list[tuple[str, Any]]:
    return [
        (f"{section.name}.{f.name}", getattr(getattr(config, section.name), f.name))
        for section in fields(config)
        for f in fields(getattr(config, section.name))
    ]


def _choice(name: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise ConfigError(f"{name}: unknown value {show(value)}; valid: {', '.join(valid)}")


def _unknown(kind: str, key: str, valid: list[str]) -> ConfigError:
    close = difflib.get_close_matches(key[:100], valid, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else f"; valid: {', '.join(valid)}"
    return ConfigError(f"unknown {kind} {show(key)}{hint}")


def _coerce(name: str, value: Any, hint: Any) -> Any:
    """Check `value` against the annotation `hint`, allowing int -> float and list -> tuple."""
    origin = typing.get_origin(hint)
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif hint is str:
        ok = isinstance(value, str)
    elif origin is tuple:
        args = typing.get_args(hint)
        ok = isinstance(value, (list, tuple)) and len(value) == len(args)
        if ok:
            value = tuple(_coerce(name, v, a) for v, a in zip(value, args, strict=True))
    elif origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(hint):
            try:
                return _coerce(name, value, arg)
            except ConfigError:
                continue
        ok = False
    else:  # pragma: no cover - every field type is handled above
        raise TypeError(f"unsupported config type {hint}")
    if not ok:
        type_name = getattr(hint, "__name__", str(hint))
        raise ConfigError(f"{name}: expected {type_name}, got {show(value)}")
    return value


def from_dict(raw: dict[str, Any], base: Config | None = None, validate: bool = True) -> Config:
    """Build a Config from nested dicts, on top of `base` (default: the defaults).

    Keys and types are always checked; ranges and cross-field rules only with `validate`
    (so several overrides can be applied before the combination is judged).
    """
    config = base or Config()
    if not isinstance(raw, dict):
        raise ConfigError("config must be a mapping with data/model/train/decode sections")
    sections = {f.name: f for f in fields(Config)}
    for section_name, values in raw.items():
        if section_name not in sections:
            raise _unknown("config section", str(section_name), list(sections))
        if values is None:
            continue
        if not isinstance(values, dict):
            raise ConfigError(f"config section {section_name!r} must be a mapping")
        section = getattr(config, section_name)
        hints = typing.get_type_hints(type(section))
        updates = {}
        for key, value in values.items():
            if key not in hints:
                valid = [f"{section_name}.{k}" for k in hints]
                raise _unknown("config key", f"{section_name}.{key}", valid)
            updates[key] = _coerce(f"{section_name}.{key}", value, hints[key])
        config = replace(config, **{section_name: replace(section, **updates)})
    return config.validate() if validate else config


def parse_override(text: str) -> dict[str, Any]:
    """Turn `train.max_steps=500` into `{"train": {"max_steps": 500}}` (value parsed as YAML)."""
    key, sep, value = text.partition("=")
    parts = key.strip().split(".")
    if not sep or len(parts) != 2 or not all(parts):
        raise ConfigError(f"--set expects SECTION.KEY=VALUE, got {show(text)}")
    try:
        parsed = parse_yaml(value) if value.strip() else ""
    except (yaml.YAMLError, ValueError):
        parsed = value
    return {parts[0]: {parts[1]: parsed}}


def load_config(
    path: Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    base: Config | None = None,
) -> Config:
    """Defaults (or `base`) <- YAML file <- `--set` overrides, then validated as a whole."""
    config = base or Config()
    if path is not None:
        try:
            raw = parse_yaml(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such config file") from None
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None
        except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as e:
            reason = (str(e).splitlines() or [type(e).__name__])[0][:200]
            raise ConfigError(f"{path}: cannot read config: {reason}") from None
        config = from_dict(raw or {}, config, validate=False)
    for text in overrides:
        config = from_dict(parse_override(text), config, validate=False)
    return config.validate()
