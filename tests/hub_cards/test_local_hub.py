"""Download a pushed checkpoint from a real Hub-compatible server on loopback (olah), as users do with a Hub id.

The module fixture stages exactly what `push_to_hub_with_card` uploads (`save_pretrained_with_card`: weights, config,
processor, filled README.md, results.json) as a repository of an olah mirror and serves it offline on 127.0.0.1
(`hub_cards.local_hub`, whose docstring explains olah's layout and the one gap it works around). Each test points
huggingface_hub and transformers at it with a fresh cache, loads by Hub id (`from_pretrained("ctrilora-test/tiny-ser")`,
Auto classes, the pipeline, `ModelCard.load`) and checks the result equals the local folder's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard

from hub_cards.local_hub import find_olah_cli, serve_olah, stage_repository
from hub_cards.push import save_pretrained_with_card
from modeling_ctrilora import WhisperForTriLoRA
import modeling_ctrilora.pipeline  # noqa: F401  (registers the pipeline; `import modeling_ctrilora` will too)

REPO_ID = "ctrilora-test/tiny-ser"
EMOTIONS = ["neutral", "happy", "sad", "angry"]
RESULTS = {
    "schema_version": 1,
    "model": {"base_model": "tiny-whisper", "preset": "full"},
    "corpora": {"source": {"name": "RAVDESS", "language": "en", "n_test": 12},
                "target": {"name": "EmoDB", "language": "de", "n_test": 10}},
    "in_domain": {"uar": 0.75, "macro_f1": 0.74, "accuracy": 0.75, "n": 12},
    "cross_corpus": {"uar": 0.41, "macro_f1": 0.39, "accuracy": 0.4, "n": 10},
    "calibration": {"temperatures": {"in_domain": 1.7, "target_adaptive": 0.6},
                    "ece": {"in_domain": {"raw": 0.1, "in_domain_T": 0.05, "adaptive_T": 0.2},
                            "cross_corpus": {"raw": 0.2, "in_domain_T": 0.25, "adaptive_T": 0.12}}},
}


pytestmark = pytest.mark.skipif(
    find_olah_cli() is None, reason="olah-cli is not installed (pip install olah; it is in the [dev] extra)"
)


def _trained_looking_export(tiny_whisper_dir: str, folder: Path) -> Path:
    """What `push_to_hub_with_card` would upload for a model whose every trainable part has moved from its init."""
    from transformers import WhisperProcessor

    torch.manual_seed(0)
    model = WhisperForTriLoRA.from_whisper(
        tiny_whisper_dir, id2label=dict(enumerate(EMOTIONS)), num_speakers=3, factor_dim=16, factor_rank=4,
        in_domain_temperature=1.7, target_temperature=0.6,
    )
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.requires_grad:  # LoRA B and FiLM start at zero: give them values a reload must preserve
                parameter.add_(torch.randn_like(parameter) * 0.05)
    save_pretrained_with_card(model, folder, processor=WhisperProcessor.from_pretrained(tiny_whisper_dir),
                              results=RESULTS, repo_id=REPO_ID)
    return folder


@pytest.fixture(scope="module")
def olah_hub(tiny_whisper_dir, tmp_path_factory):
    """An olah Hub mirror on 127.0.0.1 serving the export as `REPO_ID`; stopped by its process id afterwards."""
    root = tmp_path_factory.mktemp("olah")
    export = _trained_looking_export(tiny_whisper_dir, root / "export")
    sha = stage_repository(export, root / "hub", REPO_ID)
    with serve_olah(root / "hub") as server:
        yield SimpleNamespace(endpoint=server.endpoint, folder=str(export), sha=sha, log=server.log)


@pytest.fixture
def hub_env(olah_hub, monkeypatch, tmp_path):
    """huggingface_hub and transformers pointed at the olah server, online, with an empty cache.

    huggingface_hub reads HF_ENDPOINT / HF_HOME / HF_HUB_CACHE / HF_HUB_OFFLINE into `constants` at import, the
    module-level `HfApi` keeps the endpoint it was built with, and transformers keeps one shared `HfApi`: patch all.
    """
    import huggingface_hub.constants as constants
    import huggingface_hub.hf_api as hf_api
    import transformers.utils.hub as transformers_hub

    home = tmp_path / "hf-home"
    cache = home / "hub"
    for name, value in {"HF_ENDPOINT": olah_hub.endpoint, "HF_HOME": str(home), "HF_HUB_CACHE": str(cache),
                        "HF_HUB_DISABLE_TELEMETRY": "1"}.items():
        monkeypatch.setenv(name, value)
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "ENDPOINT", olah_hub.endpoint)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                        olah_hub.endpoint + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HUGGINGFACE_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setattr(hf_api.api, "endpoint", olah_hub.endpoint)
    monkeypatch.setattr(transformers_hub, "_hf_api", None)
    return SimpleNamespace(cache=cache)


def snapshot(cache: Path, sha: str) -> Path:
    return cache / f"models--{REPO_ID.replace('/', '--')}" / "snapshots" / sha


def test_model_downloads_from_the_hub_id_and_matches_the_local_folder(olah_hub, hub_env):
    from transformers import AutoModelForAudioClassification

    remote = WhisperForTriLoRA.from_pretrained(REPO_ID).eval()
    local = WhisperForTriLoRA.from_pretrained(olah_hub.folder).eval()
    # It came through the server: the files sit in the fresh cache under the mirror's commit.
    assert (snapshot(hub_env.cache, olah_hub.sha) / "model.safetensors").is_file()
    assert remote.config.to_dict() | {"_name_or_path": None} == local.config.to_dict() | {"_name_or_path": None}
    remote_state, local_state = remote.state_dict(), local.state_dict()
    assert remote_state.keys() == local_state.keys()
    for key in local_state:
        torch.testing.assert_close(remote_state[key], local_state[key], rtol=0, atol=0)
    features, mask = torch.randn(2, 80, 80), torch.ones(2, 80, dtype=torch.long)
    mask[1, 50:] = 0
    torch.testing.assert_close(remote(features, attention_mask=mask).logits, local(features, attention_mask=mask).logits)
    for domain in ("in_domain", "target"):
        torch.testing.assert_close(remote.predict_emotion(features, mask, domain=domain),
                                   local.predict_emotion(features, mask, domain=domain))
    assert isinstance(AutoModelForAudioClassification.from_pretrained(REPO_ID), WhisperForTriLoRA)


def test_feature_extractor_and_processor_download_and_match(olah_hub, hub_env):
    from transformers import AutoFeatureExtractor, AutoProcessor, WhisperProcessor

    waveform = np.random.default_rng(0).standard_normal(8000).astype(np.float32) * 0.1
    remote_fe, local_fe = AutoFeatureExtractor.from_pretrained(REPO_ID), AutoFeatureExtractor.from_pretrained(
        olah_hub.folder
    )
    assert remote_fe.to_dict() == local_fe.to_dict()
    np.testing.assert_array_equal(remote_fe(waveform, sampling_rate=16000)["input_features"],
                                  local_fe(waveform, sampling_rate=16000)["input_features"])
    remote, local = AutoProcessor.from_pretrained(REPO_ID), AutoProcessor.from_pretrained(olah_hub.folder)
    assert isinstance(remote, WhisperProcessor) and type(remote) is type(local)
    text = "<|startoftranscript|><|kk|><|transcribe|><|notimestamps|>Сәлем!<|endoftext|>"
    assert remote.tokenizer(text).input_ids == local.tokenizer(text).input_ids
    np.testing.assert_array_equal(remote(audio=waveform, sampling_rate=16000)["input_features"],
                                  local(audio=waveform, sampling_rate=16000)["input_features"])


def test_pipeline_and_card_load_by_hub_id(olah_hub, hub_env):
    from transformers import pipeline

    waveform = np.random.default_rng(1).standard_normal(9600).astype(np.float32) * 0.1
    for domain in ("in_domain", "target"):
        remote = pipeline("audio-classification", model=REPO_ID)(waveform, domain=domain, top_k=None)
        local = pipeline("audio-classification", model=olah_hub.folder)(waveform, domain=domain, top_k=None)
        assert [item["label"] for item in remote] == [item["label"] for item in local]
        assert [item["score"] for item in remote] == pytest.approx([item["score"] for item in local], abs=1e-6)
    card = ModelCard.load(REPO_ID)  # README.md through the server
    assert card.data.eval_results == ModelCard.load(Path(olah_hub.folder) / "README.md").data.eval_results
    assert {(result.dataset_type, result.metric_type): result.metric_value for result in card.data.eval_results}[
        ("emodb", "recall")] == 0.41


def test_unknown_repo_is_reported_as_missing(olah_hub, hub_env):
    with pytest.raises(OSError, match="ctrilora-test/missing"):
        WhisperForTriLoRA.from_pretrained("ctrilora-test/missing")


def test_serve_local_hub_script_serves_a_run_folder_that_ctrilora_predict_loads_by_hub_id(olah_hub, tmp_path):
    """The acceptance path as a user runs it: serve a folder, `ctrilora predict` by Hub id in a fresh cache."""
    import soundfile

    clip = tmp_path / "clip.wav"
    soundfile.write(clip, (0.1 * np.random.default_rng(2).standard_normal(9600)).astype(np.float32), 16000)
    repo_id = "ctrilora-test/served"
    script = Path(__file__).resolve().parents[2] / "examples" / "serve_local_hub.py"
    server = subprocess.Popen(
        [sys.executable, str(script), "--model_dir", olah_hub.folder, "--repo_id", repo_id, "--root", str(tmp_path / "hub")],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        olah_pid = int(next(line for line in server.stdout if line.startswith("serving")).rsplit(" ", 1)[1])
        endpoint = next(line.split("=", 1)[1].strip() for line in server.stdout if line.startswith("HF_ENDPOINT="))
        predict = [sys.executable, "-m", "modeling_ctrilora.cli", "predict", str(clip), "--json", "--top_k", "4"]
        environment = {key: value for key, value in os.environ.items() if not key.startswith(("HF_", "TRANSFORMERS_"))}
        remote = subprocess.run(
            [*predict, "--model", repo_id], check=True, capture_output=True, text=True,
            env=environment | {"HF_ENDPOINT": endpoint, "HF_HOME": str(tmp_path / "fresh-hf-home")},
        )
        local = subprocess.run([*predict, "--model", olah_hub.folder], check=True, capture_output=True, text=True)
        assert json.loads(remote.stdout) == json.loads(local.stdout)
        assert list((tmp_path / "fresh-hf-home" / "hub").glob("models--ctrilora-test--served/snapshots/*/model.safetensors"))
    finally:
        server.terminate()
        server.wait(timeout=30)
    with pytest.raises(ProcessLookupError):  # SIGTERM to the script stopped (and reaped) its olah server too
        os.kill(olah_pid, 0)
