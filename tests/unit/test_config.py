"""Strict config: unknown keys, wrong types, ranges and cross-field rules are errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from nmt_cli.config import Config, from_dict, load_config, parse_override
from nmt_cli.errors import ConfigError


def test_defaults_are_valid_and_round_trip(tmp_path: Path) -> None:
    config = Config().validate()
    path = tmp_path / "c.yaml"
    path.write_text(config.to_yaml())
    assert load_config(path) == config


def test_unknown_key_suggests_closest() -> None:
    with pytest.raises(
        ConfigError, match=r"unknown config key 'train.max_step'; did you mean 'train.max_steps'"
    ):
        from_dict({"train": {"max_step": 5}})
    with pytest.raises(ConfigError, match=r"did you mean 'model'"):
        from_dict({"modle": {}})


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.max_steps=abc", "train.max_steps: expected int"),
        ("train.max_steps=1.5", "train.max_steps: expected int"),
        ("model.bidirectional=3", "model.bidirectional: expected bool"),
        ("train.batch_tokens=0", "train.batch_tokens must be positive"),
        ("train.lr=-1", "train.lr must not be negative"),
        ("model.dropout=1.5", r"model.dropout must be in \[0, 1\)"),
        ("model.attention=luong", "model.attention: unknown value 'luong'; valid: none, dot"),
        ("model.enc_hidden=300", "bridge: copy needs enc_hidden == dec_hidden"),
        ("trainmax_steps=3", "--set expects SECTION.KEY=VALUE"),
    ],
)
def test_bad_overrides(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_overrides_are_typed_and_layered(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  lr: 1\n  adam_betas: [0.9, 0.98]\nmodel:\n  cell: gru\n")
    config = load_config(path, ["train.max_steps=7", "model.attention=bahdanau"])
    assert config.train.lr == 1.0 and isinstance(config.train.lr, float)
    assert config.train.adam_betas == (0.9, 0.98)
    assert config.train.max_steps == 7
    assert (config.model.cell, config.model.attention) == ("gru", "bahdanau")
    assert parse_override("decode.alpha=0.6") == {"decode": {"alpha": 0.6}}


def test_config_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2")
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(bad)
