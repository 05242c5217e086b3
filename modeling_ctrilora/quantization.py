"""int8 CPU inference: a copy of a `WhisperForTriLoRA` with its LoRA merged and its Whisper projections int8-quantised.

On CPUs without native bf16 (no AVX-512 BF16 / AMX, see `hardware`) bf16 autocast is slower than fp32, and fp32
inference is bound by the fp32 matrix products (BENCHMARKS.md, "Speed"). Dynamic int8 quantisation (weights stored as
int8 with one scale per output channel, activations quantised per batch on the fly; PyTorch's `quantize_dynamic`,
as in PyTorch's "Dynamic Quantization on BERT" tutorial) runs those products with int8 kernels (FBGEMM on x86)
instead. What it costs in accuracy is measured in BENCHMARKS.md ("Speed", issue 16 re-measurement)
on fine-tuned models with McNemar against fp32; the convolutions, layer norms, pooled-state statistics and the
temperatures stay fp32, and so do the router and the heads.

The copy is for inference only: its parameters are frozen, and its `save_pretrained` raises (it would write quantised
tensors that `from_pretrained` does not read); keep the fp32 checkpoint and quantise after loading.
PyTorch marks `torch.ao.quantization` as deprecated in favour of torchao, whose int8 path had no fast CPU kernel
for these shapes here (about 20× slower than fp32 on whisper-base, torchao 0.18), so the eager API is used while it
exists and its absence is reported as an error.

Example:
    >>> from modeling_ctrilora import WhisperForTriLoRA
    >>> from modeling_ctrilora.quantization import quantize_for_inference
    >>> model = WhisperForTriLoRA.from_pretrained("runs/ctrilora").eval()  # doctest: +SKIP
    >>> fast = quantize_for_inference(model)  # the original model is left as it was  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import warnings

import torch
from peft.tuners.lora import LoraLayer

# Marks a quantised copy (`is_quantized_for_inference`).
QUANTIZED_ATTRIBUTE = "_ctrilora_int8_inference"


def quantize_for_inference(model: torch.nn.Module) -> torch.nn.Module:
    """An int8 dynamic-quantised copy of `model` for CPU inference; `model` itself is not changed.

    The copy's LoRA updates are folded into their base projections first, in fp32 (W + (α/r)·BA, as
    `WhisperForTriLoRA.merged_lora` does), and only then is every Whisper projection (each module of type
    `torch.nn.Linear`: attention, feed-forward and the decoder's output layer, nearly all of the FLOPs) replaced by
    its dynamically quantised int8 counterpart. The router, FiLM and the heads (`FactorLinear` / `ZeroInitLinear`,
    small) stay fp32.

    Raises:
        ValueError: the model is in training mode or not on the CPU (int8 dynamic kernels are CPU kernels).
        RuntimeError: this PyTorch build has no `torch.ao.quantization.quantize_dynamic` or no int8 engine.
    """
    if model.training:
        raise ValueError("quantize_for_inference: call model.eval() first; an int8 copy is for inference only")
    devices = {parameter.device.type for parameter in model.parameters()}
    if devices != {"cpu"}:
        raise ValueError(f"quantize_for_inference: int8 dynamic quantisation runs on the CPU; the model is on {sorted(devices)}")
    quantize_dynamic = getattr(getattr(torch.ao, "quantization", None), "quantize_dynamic", None)
    if quantize_dynamic is None or not torch.backends.quantized.supported_engines:
        raise RuntimeError(
            f"quantize_for_inference: PyTorch {torch.__version__} has no torch.ao.quantization.quantize_dynamic or no "
            "quantised CPU engine; run in fp32 (or with --bf16 on a CPU with native bf16)"
        )
    quantized = copy.deepcopy(model)
    with torch.no_grad():
        for layer in quantized.modules():
            if isinstance(layer, LoraLayer) and not layer.merged:
                layer.merge()
    with warnings.catch_warnings():
        # The API's deprecation notice (see the module docstring) would be printed on every call to users who
        # asked for exactly this; the choice is documented here instead.
        warnings.filterwarnings("ignore", message=r"torch\.ao\.quantization is deprecated", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=r"torch\.quantize_per_tensor", category=UserWarning)
        quantize_dynamic(quantized, {torch.nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig}, inplace=True)
    for parameter in quantized.parameters():
        parameter.requires_grad_(False)
    setattr(quantized, QUANTIZED_ATTRIBUTE, True)
    quantized.save_pretrained = _refuse_to_save  # the instance's, not the class's: the fp32 model still saves
    return quantized


def _refuse_to_save(*args, **kwargs) -> None:
    raise TypeError(
        "this is an int8 inference copy (quantize_for_inference); save the fp32 model it was made from instead"
    )


def is_quantized_for_inference(model: torch.nn.Module) -> bool:
    """Whether `model` is a copy made by `quantize_for_inference`."""
    return bool(getattr(model, QUANTIZED_ATTRIBUTE, False))


__all__ = ["QUANTIZED_ATTRIBUTE", "is_quantized_for_inference", "quantize_for_inference"]
