"""Config values a hostile or careless user writes (issue 22): non-finite floats, out-of-range
betas and seeds, `1e-3` floats, long values and alias bombs in error messages."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from nmt_cli.config import Config, load_config
from nmt_cli.errors import ConfigError

FLOAT_KEYS = [
    f"{section}.{key}"
    for section, values in Config().to_dict().items()
    for key, value in values.items()
    if isinstance(value, float)
]


@pytest.mark.parametrize("key", FLOAT_KEYS)
@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
def test_every_float_setting_rejects_nan_and_infinity(key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{key} must (be a finite number|not be negative)"):
        load_config(None, [f"{key}={value}"])


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.adam_betas=[0.9, 1.0]", r"train.adam_betas must both be in \[0, 1\)"),
        ("train.adam_betas=[1.5, 0.9]", r"train.adam_betas must both be in \[0, 1\)"),
        ("train.adam_betas=[-0.1, 0.9]", "train.adam_betas must not be negative"),
        ("train.adam_betas=[.nan, 0.9]", "train.adam_betas must be a finite number"),
        (f"train.seed={2**64}", r"train.seed must be below 2\*\*64"),
        ("train.seed=-1", "train.seed must not be negative"),
    ],
)
def test_ranges_are_checked_naming_the_key(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"^{message}"):
        load_config(None, [override])


def test_the_largest_seed_is_accepted() -> None:
    assert load_config(None, [f"train.seed={2**64 - 1}"]).train.seed == 2**64 - 1


def test_exponent_floats_are_floats_in_set_and_yaml(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  lr: 1e-3\n  min_lr: 5E-6\nmodel:\n  dropout: 2e-1\n")
    config = load_config(path, ["train.clip_norm=1e1"])
    assert (config.train.lr, config.train.min_lr) == (0.001, 5e-6)
    assert (config.model.dropout, config.train.clip_norm) == (0.2, 10.0)
    with pytest.raises(ConfigError, match="expected float, got '1e-3'"):  # quoted: a string
        load_config(None, ["train.lr='1e-3'"])


def test_long_values_are_cut_in_messages(tmp_path: Path) -> None:
    for override in ("model.cell=" + "x" * 1_000_000, "train.seed=" + "9" * 5000):
        with pytest.raises(ConfigError) as caught:
            load_config(None, [override])
        assert len(str(caught.value)) < 200, str(caught.value)[:300]


def test_a_yaml_alias_bomb_is_a_short_message(tmp_path: Path) -> None:
    """Each level doubles: 30 levels would print 2**30 items. Cut, and quick."""
    path = tmp_path / "bomb.yaml"
    path.write_text(
        "train:\n  lr:\n    - &a0 [lol, lol]\n"
        + "".join(f"    - &a{i} [*a{i - 1}, *a{i - 1}]\n" for i in range(1, 31))
    )
    started = time.perf_counter()
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert time.perf_counter() - started < 1.0
    assert len(str(caught.value)) < 300 and "train.lr: expected float" in str(caught.value)


def test_more_than_100_aliases_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "many.yaml"
    path.write_text("train:\n  lr: &x 0.1\n  min_lr: [" + ", ".join(["*x"] * 101) + "]\n")
    with pytest.raises(ConfigError, match=r"many.yaml: more than 100 YAML aliases"):
        load_config(path)
