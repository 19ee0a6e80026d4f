"""The one place a device name becomes a torch.device (train and translate alike)."""

from __future__ import annotations

import torch

from nmt_cli.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """auto -> cuda when available, else cpu; an explicit cuda without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available (use --device cpu or auto)")
    if name not in ("cpu",) and not name.startswith("cuda"):
        raise ConfigError(f"--device: unknown device {name!r}; valid: auto, cpu, cuda, cuda:N")
    return torch.device(name)
