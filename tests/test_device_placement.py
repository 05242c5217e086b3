"""GPU path sanity without a GPU: nothing of `WhisperForTriLoRA` is pinned to the CPU or to fp32.

Every tensor of the model's state is a parameter or a registered buffer (so `model.to(...)` moves it), every buffer
follows a dtype change and a device move (`"meta"` stands in for a GPU: a tensor left behind would stay on the CPU),
a forward in another dtype runs end to end, and no tensor the code creates at run time is made on the default device
instead of its inputs'. The accelerate configs in `examples/accelerate_configs/` parse with the installed accelerate.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
from accelerate.commands.config.config_args import load_config_from_file
from accelerate.commands.launch import _validate_launch_command, launch_command_parser
from accelerate.utils import DistributedType

REPO = Path(__file__).resolve().parents[1]
# The state the issue names: the GRL schedule, the pooled standardisation's running and target statistics.
NAMED_BUFFERS = {
    "gradient_reversal.coefficient",
    "gradient_reversal.progress",
    "gradient_reversal.step",
    "pooled_standardization.running_mean",
    "pooled_standardization.running_var",
    "pooled_standardization.num_batches_tracked",
    "pooled_standardization.target_mean",
    "pooled_standardization.target_var",
    "pooled_standardization.target_clips",
}
# Buffers that must keep their integer dtype through `model.to(dtype)` (counters).
INTEGER_BUFFERS = {
    "gradient_reversal.step", "pooled_standardization.num_batches_tracked", "pooled_standardization.target_clips",
    "coral_target_steps",
}


@pytest.fixture
def model(make_model):
    model = make_model(ser_class_weights=[0.5, 1.0, 1.5, 1.0])
    model.gradient_reversal.set_progress(3, 10)
    return model


def batch(dtype: torch.dtype) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    mask = torch.ones(4, 40, dtype=torch.long)
    mask[0, 30:] = 0
    return {
        "input_features": torch.randn(4, 80, 40, generator=generator).to(dtype),
        "attention_mask": mask,
        "labels": torch.tensor([0, 1, 2, 3]),
        "speaker_labels": torch.tensor([0, 1, 2, 0]),
        "asr_labels": torch.randint(0, 50, (4, 5), generator=generator),
        "transcript_ids": torch.tensor([0, 0, 1, 1]),
        "target_input_features": torch.randn(4, 80, 36, generator=generator).to(dtype),
    }


def test_every_tensor_of_the_model_is_a_parameter_or_a_buffer(model):
    buffers = dict(model.named_buffers())
    assert NAMED_BUFFERS <= set(buffers), NAMED_BUFFERS - set(buffers)
    for name, module in model.named_modules():
        for attribute, value in vars(module).items():
            # A plain tensor attribute would not move with model.to(...): register it as a buffer instead.
            assert not isinstance(value, torch.Tensor), f"{name or 'model'}.{attribute} is a tensor outside the state"


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_every_buffer_follows_a_dtype_change_and_the_forward_runs(model, dtype):
    model.train().to(dtype)
    for name, buffer in list(model.named_buffers()) + list(model.named_parameters()):
        expected = torch.long if name in INTEGER_BUFFERS else dtype
        assert buffer.dtype == expected, (name, buffer.dtype)
    if any("coral_target_covariance" in name for name, _ in model.named_buffers()):
        assert model.get_buffer("coral_target_covariance").dtype == dtype
    output = model(**batch(dtype))
    for term in ("ser", "speaker", "adversary", "asr", "counterfactual", "coral", "orthogonality"):
        value = getattr(output, f"{term}_loss")
        assert value is not None and torch.isfinite(value), term
    assert output.logits.dtype == dtype and torch.isfinite(output.loss)
    output.loss.backward()
    assert model.gradient_reversal.set_progress(5, 10) == pytest.approx(float(model.gradient_reversal.coefficient), rel=1e-2)
    assert model.gradient_reversal.coefficient.dtype == dtype
    assert model.pooled_standardization.running_mean.dtype == dtype  # updated in place, in its own dtype

    model.eval()
    data = batch(dtype)
    clips = model.fit_target_statistics([{"input_features": data["input_features"], "attention_mask": data["attention_mask"]}])
    assert clips == 4 and model.pooled_standardization.target_mean.dtype == dtype
    probabilities = model.predict_emotion(data["input_features"], data["attention_mask"], domain="target")
    assert torch.isfinite(probabilities).all()
    torch.testing.assert_close(probabilities.sum(-1), torch.ones(4))


def test_every_parameter_and_buffer_follows_a_device_move(model):
    names = {name for name, _ in model.named_buffers()} | {name for name, _ in model.named_parameters()}
    moved = model.to("meta")  # a device other than the CPU: whatever stays behind is pinned there
    tensors = dict(moved.named_buffers()) | dict(moved.named_parameters())
    assert set(tensors) == names and NAMED_BUFFERS <= names
    for name, tensor in tensors.items():
        assert tensor.device.type == "meta", name
    # A moved model's schedule and statistics are updated on their own device.
    moved.gradient_reversal.set_progress(4, 10)
    assert moved.gradient_reversal.coefficient.device.type == "meta"


FACTORIES = {"tensor", "as_tensor", "zeros", "ones", "full", "empty", "arange", "eye", "rand", "randn", "randint", "linspace"}


def test_no_tensor_is_created_at_run_time_on_the_default_device():
    """Outside `__init__` (whose tensors become buffers and move with the model), every `torch.<factory>(...)` in
    `modeling_ctrilora` names its device (the inputs'); `torch.rand([])`, Whisper's layer-drop draw, is a Python-side
    coin flip and may stay on the CPU."""
    offenders = []
    for path in sorted((REPO / "modeling_ctrilora").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for function in ast.walk(tree):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)) or function.name == "__init__":
                continue
            for call in ast.walk(function):
                if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                        and isinstance(call.func.value, ast.Name) and call.func.value.id == "torch"
                        and call.func.attr in FACTORIES):
                    continue
                if any(keyword.arg == "device" for keyword in call.keywords):
                    continue
                if call.func.attr == "rand" and ast.unparse(call) == "torch.rand([])":
                    continue
                offenders.append(f"{path.name}:{call.lineno} {ast.unparse(call)}")
    assert not offenders, offenders


# ------------------------------------------------------------------------------------------- accelerate configs
CONFIGS = sorted((REPO / "examples" / "accelerate_configs").glob("*.yaml"))


def test_the_four_configs_are_there():
    assert {path.name for path in CONFIGS} == {"cpu.yaml", "cpu_2proc.yaml", "single_gpu.yaml", "multi_gpu.yaml"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda path: path.name)
def test_accelerate_config_parses_with_the_installed_accelerate(path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    config = load_config_from_file(str(path))  # raises on keys this accelerate does not know
    args = launch_command_parser().parse_args(["--config_file", str(path), "examples/train_ctrilora.py", "--bf16"])
    _validate_launch_command(args)  # what `accelerate launch --config_file` does with it before starting
    gpu = "gpu" in path.stem
    assert args.mixed_precision == ("bf16" if gpu else "no")
    assert config.use_cpu is (path.stem == "cpu")
    expected = DistributedType.MULTI_GPU if path.stem in ("multi_gpu", "cpu_2proc") else DistributedType.NO
    assert config.distributed_type == expected and args.num_processes == (2 if "2proc" in path.stem or "multi" in path.stem else 1)
