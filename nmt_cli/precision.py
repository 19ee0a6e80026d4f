"""Inference precision: fp32 (the reference), bf16, or dynamic int8, chosen when a model loads.

- fp32: the model as trained; the Python API's default and the reference the others are
  measured against.
  On the CPU its Linear and LSTMCell weights are packed for oneDNN (`model/onednn.py`): the
  same fp32 arithmetic, faster matmuls than the BLAS.
- bf16 on the CPU: the weights are cast to bfloat16, so the LSTM and every Linear run in bf16.
  The per-step attention products (dot, general, none) run in fp32 on an fp32 copy of the
  encoder states made once per sentence (`Attention.run_steps_in`): oneDNN's bf16 bmm is
  slower than fp32's at these shapes, and compiles a kernel for each new one (measurements in
  benchmarks/README.md). Autocast is slower here: CPU autocast leaves the packed nn.LSTM and
  nn.LSTMCell in fp32. Fast only where the CPU has native bf16 (AVX512-BF16 or AMX); a warning
  says when it has not. The bf16 weights are packed for oneDNN like fp32's. On CUDA: bf16
  autocast, the weights stay fp32.
- int8 (CPU only): dynamic quantization (`torch.ao.quantization.quantize_dynamic`) of every
  nn.Linear, nn.LSTM/GRU and nn.LSTMCell/GRUCell/RNNCell: int8 weights, activations quantized
  on the fly per batch. Embeddings stay fp32; a generator tied to the target embedding gets its
  own int8 copy, the embedding keeps the float weight. Plain nn.RNN encoders stay fp32.

At every precision the decoder step's log-softmax, and all the search adds up, stay fp32
(`Seq2Seq.decode_step` casts the logits); attention weights come back as fp32 (bf16-rounded
under bf16 with additive attention). With int8 the activation scale is per batch, so a
sentence's translation can depend on the other sentences in its batch.

`auto`, the command line's default (`nmt translate`, `nmt serve`), is bf16 where the CPU has
native bf16 and fp32 elsewhere (`resolve_precision`). `nmt score` keeps fp32: its scores are
the reference's.

The inference kernels are chosen here, once, when a model is moved to its precision: the
packed or quantized modules replace the float ones, and each attention learns its step dtype
(`Attention.run_steps_in`). The model's step takes none of this as an argument.
"""

from __future__ import annotations

import logging
import warnings
from contextlib import AbstractContextManager, nullcontext
from typing import Any, TypeVar

import torch
from torch import nn

from nmt_cli.errors import ConfigError
from nmt_cli.model.attention import Attention
from nmt_cli.model.onednn import pack_for_inference
from nmt_cli.names import AUTO_PRECISION, INFERENCE_PRECISIONS

M = TypeVar("M", bound=nn.Module)

log = logging.getLogger(__name__)


def check_precision(precision: str, device: torch.device) -> None:
    """Raise ConfigError for an unknown precision or one the device cannot run."""
    if precision not in INFERENCE_PRECISIONS:
        valid = ", ".join(INFERENCE_PRECISIONS)
        raise ConfigError(f"--precision: unknown {precision!r}; valid: {valid}")
    if precision == "int8" and device.type != "cpu":
        raise ConfigError(
            f"--precision int8 runs on the CPU only (dynamic quantization); on {device.type} "
            "use --precision bf16"
        )


def resolve_precision(precision: str, device: torch.device) -> str:
    """The precision `auto` stands for on `device`; any other name is returned as it is.

    `auto` is bf16 on a CPU with native bf16 (AVX512-BF16 or AMX), where translation is
    faster at the same BLEU (beam 5 x1.17 on an AMD EPYC, x1.67 on a Xeon with AMX, BLEU
    within 0.1: benchmarks/README.md), and fp32 elsewhere (older CPUs, CUDA).
    """
    if precision != AUTO_PRECISION:
        return precision
    return "bf16" if device.type == "cpu" and _cpu_has_native_bf16(unknown=False) else "fp32"


def apply_precision(model: M, precision: str, device: torch.device) -> M:
    """Convert an eval-mode model on `device` for inference at `precision`, in place.

    Args:
        model: a Seq2Seq or an Ensemble of them, already on `device`.
        precision: fp32, bf16 or int8 (`resolve_precision` turns auto into one of them).
        device: where it runs.

    Returns:
        The model to search with (its modules swapped on the CPU; on CUDA `model` itself).
    """
    check_precision(precision, device)
    if precision == "bf16" and device.type == "cpu":
        if not _cpu_has_native_bf16():
            log.warning("this CPU has no native bf16 (AVX512-BF16/AMX): bf16 may be slower")
        for module in model.modules():
            if isinstance(module, Attention):
                module.run_steps_in(torch.float32)
        return pack_for_inference(model.to(torch.bfloat16))
    if precision == "int8":
        with warnings.catch_warnings():
            # torch.ao.quantization and quantized tensors are deprecated in favour of torchao,
            # whose CPU dynamic quantization covers nn.Linear only, not our LSTMs.
            warnings.filterwarnings("ignore", message=".*deprecated")
            quantized: M = torch.ao.quantization.quantize_dynamic(
                model, dtype=torch.qint8, inplace=True
            )
        return quantized
    return pack_for_inference(model)


def search_context(precision: str, device: torch.device) -> AbstractContextManager[Any]:
    """What the search runs under: bf16 autocast on CUDA, nothing otherwise."""
    if precision == "bf16" and device.type != "cpu":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def _cpu_has_native_bf16(unknown: bool = True) -> bool:
    """Whether the CPU has AVX512-BF16 or AMX; `unknown` where torch lacks the (private)
    probes: yes for the warning (no false alarm), no for `auto` (never a slow default)."""
    cpu: Any = torch.cpu
    probes = [
        getattr(cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    ]
    if any(probe() for probe in probes if probe is not None):
        return True
    return unknown if None in probes else False
