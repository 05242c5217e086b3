"""`ctrilora predict` errors that come early and say what to do (issue 15, item 8)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from test_pipeline_cli import audio_files  # noqa: F401  (module fixture; `checkpoint` is in conftest)

from modeling_ctrilora.cli import build_parser, main

REPO = Path(__file__).resolve().parents[1]


def test_a_directory_argument_predicts_every_audio_file_in_it(checkpoint, audio_files, tmp_path, capsys):  # noqa: F811
    folder = tmp_path / "clips"
    folder.mkdir()
    for name in ("good", "stereo"):
        shutil.copy(audio_files[name], folder / f"{name}.wav")
    (folder / "notes.txt").write_text("not audio")
    assert main(["predict", str(folder), "--model", checkpoint, "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [record["file"] for record in records] == [str(folder / "good.wav"), str(folder / "stereo.wav")]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["predict", str(empty), "--model", checkpoint]) == 1
    assert f"{empty}: a folder without audio files" in capsys.readouterr().err


def test_help_says_what_a_directory_does_and_lists_choices():
    text = build_parser()._subparsers._group_actions[0].choices["predict"].format_help()
    assert "every audio file in it" in " ".join(text.split())
    assert "{in_domain,target}" in text


def test_cuda_device_on_a_cpu_only_torch_is_a_one_line_usage_error(checkpoint, audio_files, capsys, monkeypatch):  # noqa: F811
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["predict", audio_files["good"], "--model", checkpoint, "--device", "cuda:0"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cuda:0" in err and "CUDA" in err
    assert main(["predict", audio_files["good"], "--model", checkpoint, "--device", "gpu0"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_unknown_language_is_a_one_line_usage_error(checkpoint, audio_files, capsys):  # noqa: F811
    status = main(["predict", audio_files["good"], "--model", checkpoint, "--transcribe", "--language", "klingon"])
    err = capsys.readouterr().err.strip()
    assert status == 2 and len(err.splitlines()) == 1 and "klingon" in err and "kk" in err


def test_a_missing_model_folder_is_neither_a_folder_nor_a_hub_id(audio_files, tmp_path, capsys):  # noqa: F811
    assert main(["predict", audio_files["good"], "--model", str(tmp_path / "no-model")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "neither a folder nor a Hub id" in err and str(tmp_path / "no-model") in err


@pytest.mark.parametrize("flag, values", [("--preset", "full,paper,shared_head"), ("--input_padding", "short,pad_to_30s"),
                                          ("--on_bad_audio", "error,skip"), ("--source_split", "stratified,speaker_independent")])
def test_training_arguments_list_the_allowed_values_and_the_parser_enforces_them(flag, values, capsys):
    sys.path.insert(0, str(REPO / "examples"))
    import train_ctrilora

    with pytest.raises(SystemExit) as info:
        train_ctrilora.parse_arguments([flag, "nonsense"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "invalid choice: 'nonsense'" in err
    assert values in err.replace("'", "").replace(" ", "")
