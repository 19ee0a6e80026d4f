"""One registry: the names config validation accepts are the names the model builds from."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
import torch

from nmt_cli import names
from nmt_cli.config import Config, ModelConfig, TrainConfig
from nmt_cli.errors import ConfigError
from nmt_cli.model.attention import ATTENTION
from nmt_cli.model.decoder import CELL_MODULES
from nmt_cli.model.encoder import RNNS
from nmt_cli.model.seq2seq import Bridge
from nmt_cli.precision import check_precision


def test_the_model_dicts_have_exactly_the_registered_names() -> None:
    assert list(ATTENTION) == list(names.ATTENTIONS)
    assert list(CELL_MODULES) == list(names.CELLS)
    assert list(RNNS) == list(names.CELLS)


@pytest.mark.parametrize("kind", names.BRIDGES)
def test_every_registered_bridge_builds_and_maps_layers(kind: str) -> None:
    bridge = Bridge(kind, enc_size=6, dec_size=6, dec_layers=2, n_states=2)
    final = (torch.randn(1, 3, 6), torch.randn(1, 3, 6))  # enc_layers x B x He
    assert [s.shape for s in bridge(final)] == [(2, 3, 6), (2, 3, 6)]


def test_an_unregistered_bridge_is_refused_with_the_valid_names() -> None:
    with pytest.raises(ValueError, match="valid: linear, copy, zero"):
        Bridge("mean", 6, 6, 1, 1)


def test_config_accepts_the_registered_names_and_refuses_others() -> None:
    for field, valid in (("cell", names.CELLS), ("attention", names.ATTENTIONS)):
        for name in valid:
            dataclasses.replace(Config(), model=ModelConfig(**{field: name})).validate()
        with pytest.raises(ConfigError, match=f"model.{field}: unknown"):
            dataclasses.replace(Config(), model=ModelConfig(**{field: "x"})).validate()
    for bridge in names.BRIDGES:
        Config(model=ModelConfig(bridge=bridge)).validate()


def test_training_takes_the_float_precisions_and_translation_all() -> None:
    assert set(names.TRAINING_PRECISIONS) < set(names.PRECISIONS)
    for precision in names.TRAINING_PRECISIONS:
        Config(train=TrainConfig(precision=precision)).validate()
    with pytest.raises(ConfigError, match=r"valid: fp32, bf16$"):
        Config(train=TrainConfig(precision="int8")).validate()
    for precision in names.PRECISIONS:
        check_precision(precision, torch.device("cpu"))


def loaded_modules(statement: str) -> set[str]:
    """The modules a fresh interpreter has loaded after `statement`."""
    code = f"import sys; {statement}; print(' '.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_the_model_does_not_load_the_tokenizer() -> None:
    loaded = loaded_modules("import nmt_cli.model")
    assert "torch" in loaded  # the check can fail: the statement ran
    assert "sentencepiece" not in loaded and "nmt_cli.tokenizer" not in loaded


def test_reading_a_config_does_not_load_torch() -> None:
    loaded = loaded_modules("import nmt_cli.config, nmt_cli.names, nmt_cli.special_ids")
    assert "nmt_cli.config" in loaded
    assert "torch" not in loaded
