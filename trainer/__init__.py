"""Training, data and evaluation for C-TriLoRA: `CTriLoRATrainer`, its arguments and the corpus pipeline."""

from .ctrilora_trainer import CTriLoRATrainer
from .training_args import CTriLoRATrainingArguments

__all__ = ["CTriLoRATrainer", "CTriLoRATrainingArguments"]
