"""Model card from results.json (metadata, model-index round trip, body, tolerance) and the one-commit Hub push."""

from __future__ import annotations

import copy
import json
import shutil

import pytest
import torch
from huggingface_hub import CommitInfo, HfApi, ModelCard, RepoUrl
from huggingface_hub.repocard_data import eval_results_to_model_index, model_index_to_eval_results
from transformers import AutoFeatureExtractor, WhisperProcessor

from hub_cards import PAPER_CITATION, build_model_card, load_results
from hub_cards.push import push_to_hub_with_card
from modeling_ctrilora import WhisperForTriLoRA

EMOTIONS = ["neutral", "happy", "sad", "angry"]


RESULTS = {
    "schema_version": 1,
    "model": {"base_model": "openai/whisper-base", "preset": "full", "trainable_fraction": 0.016,
              "checkpoint": "runs/full/checkpoint-500", "target_statistics_clips": 64},
    "emotions": EMOTIONS,
    "corpora": {"source": {"name": "KazEmoTTS", "language": "kk", "n_test": 120},
                "target": {"name": "ENU KEMO", "language": "kk", "n_test": 80}},
    "protocol": {"source_split": "speaker_independent", "transductive": False, "seed": 7},
    "in_domain": {
        "uar": 0.8712, "macro_f1": 0.8609, "accuracy": 0.875, "n": 120, "labels": EMOTIONS,
        "per_class": {"f1": {"neutral": 0.90, "happy": 0.80, "sad": 0.85, "angry": 0.89},
                      "recall": {"neutral": 0.92, "happy": 0.78, "sad": 0.86, "angry": 0.90}},
        "confusion_matrix": [[28, 1, 1, 0], [2, 23, 4, 1], [1, 3, 26, 0], [0, 1, 1, 28]],
    },
    "cross_corpus": {
        "uar": 0.4301, "macro_f1": 0.4144, "accuracy": 0.45, "n": 80, "labels": EMOTIONS,
        "per_class": {"f1": {"neutral": 0.55, "happy": 0.21, "sad": 0.33, "angry": 0.56},
                      "recall": {"neutral": 0.60, "happy": 0.15, "sad": 0.50, "angry": 0.47}},
        "confusion_matrix": [[12, 2, 5, 1], [3, 3, 12, 2], [4, 3, 10, 3], [2, 3, 5, 10]],
    },
    "asr": {"in_domain": {"wer": 0.31, "cer": 0.12, "n": 120}},
    "calibration": {
        "temperatures": {"in_domain": 1.41, "target_adaptive": 2.2},
        "ece": {"in_domain": {"raw": 0.0644, "in_domain_T": 0.0515, "adaptive_T": 0.08},
                "cross_corpus": {"raw": 0.1944, "in_domain_T": 0.2312, "adaptive_T": 0.1203}},
        "discriminator_auc": 0.71,
    },
    "comparisons": {"mcnemar": [{"a": "full", "b": "no_coral", "statistic": 9.3, "p_value": 0.0023, "n": 80,
                                 "method": "exact"}]},
    "plots": {"reliability": "plots/reliability.png"},
}


def metric(card: ModelCard, dataset_type: str, metric_type: str) -> float:
    values = [r.metric_value for r in card.data.eval_results
              if r.dataset_type == dataset_type and r.metric_type == metric_type]
    assert len(values) == 1, (dataset_type, metric_type, values)
    return values[0]


def test_card_metadata_and_model_index_round_trip():
    card = build_model_card(RESULTS, repo_id="kazsdu/ctrilora-kazemotts", datasets=["issai/kazemotts", "enu/kemo"])
    parsed = ModelCard(str(card))  # parses the YAML header offline, as the Hub does
    data = parsed.data
    assert data.library_name == "transformers" and data.pipeline_tag == "audio-classification"
    assert data.base_model == "openai/whisper-base" and data.license == "apache-2.0"
    assert {"speech-emotion-recognition", "whisper", "lora", "peft", "ctrilora", "domain-adaptation", "kk"} <= set(
        data.tags
    )
    assert data.datasets == ["issai/kazemotts", "enu/kemo"] and data.language == ["kk"]
    assert data.metrics == ["recall", "f1", "ece"]

    model_index = parsed.data.to_dict()["model-index"]
    assert model_index[0]["name"] == "ctrilora-kazemotts"
    assert [result["dataset"]["type"] for result in model_index[0]["results"]] == ["issai/kazemotts", "enu/kemo"]
    name, round_tripped = model_index_to_eval_results(eval_results_to_model_index(data.model_name, data.eval_results))
    assert name == "ctrilora-kazemotts" and round_tripped == data.eval_results == card.data.eval_results
    assert len(data.eval_results) == 6  # two corpora × (UAR, macro-F1, ECE)

    assert metric(parsed, "issai/kazemotts", "recall") == 0.8712
    assert metric(parsed, "issai/kazemotts", "f1") == 0.8609
    assert metric(parsed, "issai/kazemotts", "ece") == 0.0515  # in-domain audio: in-domain temperature
    assert metric(parsed, "enu/kemo", "recall") == 0.4301
    assert metric(parsed, "enu/kemo", "f1") == 0.4144
    assert metric(parsed, "enu/kemo", "ece") == 0.1203  # target audio: domain-adaptive temperature


def test_card_body_has_every_section_with_this_runs_numbers(tmp_path):
    card = build_model_card(RESULTS, repo_id="kazsdu/ctrilora-kazemotts")
    path = tmp_path / "README.md"
    card.save(path)
    text = ModelCard.load(path).text  # reload offline from disk
    for heading in ("## Intended use", "## Training data and protocol", "## Results", "### Per-class results",
                    "### Confusion matrix: cross-corpus (ENU KEMO)", "## Calibration", "## Limitations",
                    "## How to use", "## Citation", "### Speech recognition", "### Significance (McNemar)"):
        assert heading in text, heading
    assert "| in-domain | KazEmoTTS | kk | 120 | 87.1 % | 86.1 % | 87.5 % | 5.1 % |" in text
    assert "| cross-corpus | ENU KEMO | kk | 80 | 43.0 % | 41.4 % | 45.0 % | 12.0 % |" in text
    assert "| happy | 80.0 % | 78.0 % | 21.0 % | 15.0 % |" in text
    assert "| **happy** | 3 | 3 | 12 | 2 |" in text
    assert "| cross-corpus | 19.44 % | 23.12 % | 12.03 % |" in text
    assert "in-domain T = 1.410, domain-adaptive T = 2.200" in text
    assert "19.4 % → 23.1 %" in text and "happy → sad (12 clips)" in text  # paper finding + this run's confusions
    assert "speaker-independent" in text and "disjoint from the labelled test part" in text
    assert "| full | no_coral | 9.300 | 0.0023 | 80 | exact |" in text
    assert "![Reliability](plots/reliability.png)" in text
    assert 'from_pretrained("kazsdu/ctrilora-kazemotts")' in text and "ctrilora predict" in text
    assert PAPER_CITATION in text and "1.60 %" in text
    assert "statistics of 64 unlabeled target-corpus clips (AdaBN)" in text


def test_missing_optional_sections_are_left_out():
    results = {key: copy.deepcopy(RESULTS[key]) for key in ("model", "corpora", "in_domain")}
    results["model"].pop("target_statistics_clips")
    results["in_domain"]["per_class"] = {"f1": {"neutral": 0.9, "sad": 0.7}}  # F1 only, two classes
    card = ModelCard(str(build_model_card(results)))
    assert [(r.dataset_type, r.metric_type) for r in card.data.eval_results] == [("kazemotts", "recall"),
                                                                                ("kazemotts", "f1")]
    assert card.data.model_name == "ctrilora-full"
    text = card.text
    assert "### Speech recognition" not in text and "## Plots" not in text and "McNemar" not in text
    assert "This run reported no calibration results." in text and "| sad | 70.0 % |" in text
    assert "path/to/checkpoint" in text
    assert "AdaBN" not in text  # the results say nothing about target statistics

    bare = ModelCard(str(build_model_card({})))
    assert bare.data.eval_results is None and bare.data.library_name == "transformers"


def test_cross_corpus_ece_falls_back_to_the_temperature_the_model_applies():
    results = copy.deepcopy(RESULTS)
    del results["calibration"]["ece"]["cross_corpus"]["adaptive_T"]
    card = build_model_card(results, datasets=["a", "b"])
    ece = [r for r in card.data.eval_results if r.dataset_type == "b" and r.metric_type == "ece"][0]
    assert ece.metric_value == 0.2312 and ece.metric_name == "ECE (in-domain temperature)"
    assert "no temperature fixed cross-corpus calibration here" in card.text


def test_load_results_checks_the_schema_version(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(RESULTS))
    assert load_results(path) == RESULTS
    path.write_text(json.dumps({**RESULTS, "schema_version": 2}))
    with pytest.raises(ValueError, match="schema_version 2"):
        load_results(path)


@pytest.fixture
def captured_push(monkeypatch, tmp_path):
    """Mock the Hub only at the network calls: `create_repo` and `upload_folder` record and copy what they get."""
    calls = {"create_repo": [], "upload_folder": []}
    capture = tmp_path / "uploaded"

    def create_repo(self, repo_id, **kwargs):
        calls["create_repo"].append((repo_id, kwargs))
        return RepoUrl(f"https://huggingface.co/{repo_id}")

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        calls["upload_folder"].append((repo_id, kwargs))
        shutil.copytree(folder_path, capture)  # the staging folder is deleted after the call
        return CommitInfo(f"https://huggingface.co/{repo_id}/commit/{'a' * 40}", kwargs["commit_message"], "", "a" * 40)

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    return calls, capture


def test_push_uploads_one_folder_with_weights_processor_and_our_card(make_model, tiny_whisper_dir, tmp_path,
                                                                       captured_push):
    calls, capture = captured_push
    run = tmp_path / "run"
    (run / "plots").mkdir(parents=True)
    (run / "plots" / "reliability.png").write_bytes(b"\x89PNG fake")
    results = {**RESULTS, "plots": {"reliability": "plots/reliability.png", "missing": "plots/nope.png"}}
    (run / "results.json").write_text(json.dumps(results))
    model = make_model(in_domain_temperature=1.5)
    processor = WhisperProcessor.from_pretrained(tiny_whisper_dir)

    url = push_to_hub_with_card(model, "me/ctrilora-test", processor=processor, results=run / "results.json",
                                private=True, token="hf_fake")

    assert url == f"https://huggingface.co/me/ctrilora-test/commit/{'a' * 40}"
    assert calls["create_repo"] == [("me/ctrilora-test", {"private": True, "exist_ok": True, "repo_type": "model"})]
    assert len(calls["upload_folder"]) == 1 and calls["upload_folder"][0][0] == "me/ctrilora-test"
    files = sorted(p.relative_to(capture).as_posix() for p in capture.rglob("*") if p.is_file())
    assert {"README.md", "config.json", "model.safetensors", "results.json", "plots/reliability.png",
            "tokenizer.json"} <= set(files), files
    assert "plots/missing.png" not in files

    card = ModelCard.load(capture / "README.md")
    assert card.data.eval_results == build_model_card(RESULTS, repo_id="me/ctrilora-test").data.eval_results
    assert "![Reliability](plots/reliability.png)" in card.text and "plots/nope.png" not in card.text
    assert json.loads((capture / "results.json").read_text())["plots"] == {"reliability": "plots/reliability.png"}

    reloaded = WhisperForTriLoRA.from_pretrained(capture).eval()
    assert reloaded.config.in_domain_temperature == 1.5 and reloaded.config.id2label == model.config.id2label
    features = torch.randn(1, 80, 60)
    torch.testing.assert_close(reloaded(features).logits, model(features).logits)
    assert AutoFeatureExtractor.from_pretrained(capture).to_dict() == processor.feature_extractor.to_dict()


def test_push_without_results_builds_the_card_from_the_model(make_model, captured_push):
    calls, capture = captured_push
    push_to_hub_with_card(make_model(preset="shared_head"), "me/bare")
    card = ModelCard.load(capture / "README.md")
    assert card.data.pipeline_tag == "audio-classification" and card.data.eval_results is None
    assert "`shared_head` — Shared-Head baseline" in card.text and "LABEL_0, LABEL_1" in card.text
    assert not (capture / "results.json").exists()
