"""Run under `accelerate launch --num_processes N --cpu`: CORAL of z_emo gathered across ranks.

Every rank builds the same tiny model (same seed) and the same source/target batches, takes its shard of the rows,
and computes CORAL through `gather_with_gradients`; rank 0 writes the value and the gradient norm of one router
weight to the JSON path given as argv[2]. With one process the same script gives the single-process reference.
"""

import json
import sys

import torch
from accelerate import Accelerator

from modeling_ctrilora import WhisperForTriLoRA
from modeling_ctrilora.losses import coral_loss
from trainer.ctrilora_trainer import gather_with_gradients

base_model, out_path = sys.argv[1], sys.argv[2]
accelerator = Accelerator(cpu=True)
torch.manual_seed(0)
# Without the pooled-state BatchNorm: its training statistics are per process (as BatchNorm's are under DDP), so
# with it the factors themselves, not only their gathering, would depend on how the rows are split across ranks.
model = WhisperForTriLoRA.from_whisper(
    base_model, num_emotions=3, num_speakers=2, factor_dim=8, factor_rank=4, pooled_normalization="none", preset="paper"
)
with torch.no_grad():
    # A tiny random Whisper barely sees its input (its positional embeddings dominate); larger conv and router
    # weights make the factors vary across clips, so the covariances and CORAL are far from 0.
    for parameter in [*model.model.encoder.conv1.parameters(), *model.router.parameters()]:
        parameter.normal_(0, 1.0)
generator = torch.Generator().manual_seed(1)
source, target = torch.randn(6, 80, 40, generator=generator), torch.randn(6, 80, 40, generator=generator)
rank, world = accelerator.process_index, accelerator.num_processes
# Uneven shards on purpose (rank 0 gets one row more) to exercise the size exchange.
bounds = [0, 4, 6] if world == 2 else [0, 6]
rows = slice(bounds[rank], bounds[rank + 1])
source_z = model(source[rows]).z_emo
target_z = model(target[rows]).z_emo
loss = coral_loss(gather_with_gradients(source_z, accelerator), gather_with_gradients(target_z, accelerator))
loss.backward()
gradient = model.router.up["emo"].weight.grad.clone()
torch.distributed.all_reduce(gradient) if world > 1 else None
if accelerator.is_main_process:
    # Each rank back-propagates the same global loss; the summed local gradients equal the single-process
    # gradient times the world size (all_gather's backward sums the ranks' gradients).
    with open(out_path, "w") as handle:
        json.dump({"coral": loss.item(), "grad_norm": float(gradient.norm() / world), "world": world}, handle)
