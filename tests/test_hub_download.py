"""Download a pushed checkpoint from a real Hub-compatible server on loopback (olah), as users do with a Hub id.

The module fixture stages exactly what `push_to_hub_with_card` uploads (`save_pretrained_with_card`: weights, config,
processor, filled README.md, results.json), commits it to a git repo in an olah mirror folder, and serves it with
`olah-cli` in offline mode on 127.0.0.1. Each test points huggingface_hub and transformers at it with a fresh cache,
loads by Hub id (`from_pretrained("ctrilora-test/tiny-ser")`, Auto classes, the pipeline, `ModelCard.load`) and checks
the result equals the local folder's.

olah's mirror layout (olah 0.5, `olah/server_mirror.py`, `olah/mirror/repos.py`): `<mirrors-path>/<repo_type>/<org>/
<name>` is a git repository (non-bare; files committed as plain blobs — an LFS pointer would be served from
`.git/lfs/objects`); revisions are resolved with `git rev-parse`, the API answers (`/api/models/<id>/revision/main`,
`tree`, `paths-info`) come from the commit. `mirrors-path` and `offline` are only settable in a TOML config.
One gap: a file *absent* from the mirror at a branch name is answered `401 RepoNotFound` (olah looks the branch up in
its own proxy cache, which mirror hits never fill), where the Hub answers `404 EntryNotFound` — and transformers probes
optional files (`processor_config.json`, `chat_template.jinja`, …) and treats the 401 as a missing repo. The fixture
therefore records `main → <commit>` in olah's revision cache with olah's own helpers, as an online olah does after
resolving a branch; olah then answers missing files with the Hub's 404 EntryNotFound.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard

import modeling_ctrilora.pipeline  # noqa: F401  (registers the pipeline; `import modeling_ctrilora` will too)
from modeling_ctrilora import WhisperForTriLoRA
from modeling_ctrilora.hub import save_pretrained_with_card

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


def _olah_cli() -> str | None:
    # The venv's own scripts first: CI runs `.venv/bin/python -m pytest` without the venv on PATH.
    beside_python = Path(sys.executable).with_name("olah-cli")
    return str(beside_python) if beside_python.is_file() else shutil.which("olah-cli")


OLAH_CLI = _olah_cli()
pytestmark = pytest.mark.skipif(
    OLAH_CLI is None, reason="olah-cli is not installed (pip install olah; it is in the [dev] extra)"
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


def _git(*args: str, cwd: Path) -> str:
    command = ["git", "-c", "user.name=ctrilora tests", "-c", "user.email=tests@ctrilora.invalid",
               "-c", "commit.gpgsign=false", *args]
    return subprocess.run(command, cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def _build_mirror(export: Path, mirrors: Path) -> str:
    """Commit the export to `<mirrors>/models/<org>/<name>` on branch main; returns the commit sha."""
    repository = mirrors / "models" / REPO_ID
    shutil.copytree(export, repository)
    _git("init", "-q", cwd=repository)
    _git("add", "-A", cwd=repository)
    _git("commit", "-q", "-m", "Upload C-TriLoRA model, processor and model card", cwd=repository)
    _git("branch", "-M", "main", cwd=repository)  # whatever the local git's default branch name is
    return _git("rev-parse", "HEAD", cwd=repository)


def _record_branch(repos_path: Path, revision: str, sha: str) -> None:
    """Write olah's `revision → commit` record so missing files get the Hub's 404 (see the module docstring)."""
    from olah.utils.cache_utils import write_cache_request
    from olah.utils.repo_utils import get_resolved_commit_save_path

    org, name = REPO_ID.split("/")
    path = get_resolved_commit_save_path(str(repos_path), "models", org, name, revision)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    asyncio.run(write_cache_request(path, 200, {}, sha.encode("ascii")))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_serving(endpoint: str, sha: str, process: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    url = f"{endpoint}/api/models/{REPO_ID}/revision/main"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"olah-cli exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if json.loads(response.read())["sha"] == sha:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    pytest.fail(f"olah-cli did not serve {url} within {timeout} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def olah_hub(tiny_whisper_dir, tmp_path_factory):
    """An olah Hub mirror on 127.0.0.1 serving the export as `REPO_ID`; stopped by its process id afterwards."""
    root = tmp_path_factory.mktemp("olah")
    export = _trained_looking_export(tiny_whisper_dir, root / "export")
    sha = _build_mirror(export, root / "mirrors")
    _record_branch(root / "repos", "main", sha)
    port = _free_port()
    config = root / "olah.toml"
    config.write_text(
        "[basic]\n"
        'host = "127.0.0.1"\n'
        f"port = {port}\n"
        f"repos-path = {json.dumps(str(root / 'repos'))}\n"
        f"mirrors-path = [{json.dumps(str(root / 'mirrors'))}]\n"
        "[accessibility]\n"
        "offline = true\n"
    )
    log = root / "olah.log"
    with open(log, "wb") as log_file:
        process = subprocess.Popen(
            [OLAH_CLI, "--config", str(config), "--log-path", str(root / "logs")],
            cwd=root, stdout=log_file, stderr=subprocess.STDOUT,
        )
    try:
        endpoint = f"http://127.0.0.1:{port}"
        _wait_until_serving(endpoint, sha, process, log)
        yield SimpleNamespace(endpoint=endpoint, folder=str(export), sha=sha, log=log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


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
