"""C-TriLoRA for Hugging Face Transformers: `CTriLoRAConfig`, `WhisperForTriLoRA` and their Auto registrations."""

from transformers import AutoConfig, AutoModel, AutoModelForAudioClassification

from .configuration_ctrilora import CTriLoRAConfig
from .modeling_backbone import CTriLoRADecoder, CTriLoRAEncoder, CTriLoRAWhisperModel
from .modeling_ctrilora import CTriLoRAOutput, FiLM, GradientReversal, TriLoRARouter, WhisperForTriLoRA
from .pipeline import CTriLoRAAudioClassificationPipeline  # registers the calibrated audio-classification pipeline
from .presets import ABLATION_PRESETS, PresetSpec, resolve_preset

AutoConfig.register(CTriLoRAConfig.model_type, CTriLoRAConfig, exist_ok=True)
AutoModel.register(CTriLoRAConfig, WhisperForTriLoRA, exist_ok=True)
AutoModelForAudioClassification.register(CTriLoRAConfig, WhisperForTriLoRA, exist_ok=True)

__all__ = [
    "ABLATION_PRESETS",
    "CTriLoRAAudioClassificationPipeline",
    "CTriLoRAConfig",
    "CTriLoRADecoder",
    "CTriLoRAEncoder",
    "CTriLoRAOutput",
    "CTriLoRAWhisperModel",
    "FiLM",
    "GradientReversal",
    "PresetSpec",
    "TriLoRARouter",
    "WhisperForTriLoRA",
    "resolve_preset",
]
