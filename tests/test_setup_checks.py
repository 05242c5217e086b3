"""Errors that come early and say what to do (issue 15, item 7): the set-up is checked before training starts."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest
from conftest_data import make_csv_corpus
from test_trainer import experiment_data, make_trainer  # noqa: F401  (a fixture and the trainer factory)

from trainer.data.corpora import load_corpus
from trainer.run import DataArguments, prepare_data

REPO = Path(__file__).resolve().parents[1]


def test_non_utf8_metadata_names_the_file_and_the_encoding_to_use(tmp_path):
    root = make_csv_corpus(tmp_path / "c", speakers=("a",), emotions=("sad",), transcripts=("Café au lait",))
    csv_path = Path(root) / "metadata.csv"
    csv_path.write_bytes(csv_path.read_text(encoding="utf-8").encode("cp1252"))
    with pytest.raises(ValueError) as info:
        load_corpus(root)
    message = str(info.value)
    assert str(csv_path) in message and "UTF-8" in message and "line 2" in message
    assert "cp1252" in message and "iconv -f cp1252 -t utf-8" in message


@pytest.mark.parametrize("extra", [",surplus", None])
def test_ragged_rows_are_an_error_naming_the_line(tmp_path, extra):
    root = make_csv_corpus(tmp_path / "c", speakers=("a",), emotions=("sad", "happy"), transcripts=("x",))
    csv_path = Path(root) / "metadata.csv"
    lines = csv_path.read_text().splitlines()
    lines[2] = lines[2] + extra if extra else lines[2].rsplit(",", 2)[0]
    csv_path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError) as info:
        load_corpus(root)
    fields = 6 if extra else 3
    assert f"{csv_path}, line 3: {fields} fields, the header has 5" in str(info.value)


def test_empty_speaker_cells_are_named_in_a_warning_and_mean_unknown(tmp_path, caplog):
    root = make_csv_corpus(tmp_path / "c", speakers=("a",), emotions=("sad", "happy"), transcripts=("x",))
    csv_path = Path(root) / "metadata.csv"
    lines = csv_path.read_text().splitlines()
    lines[2] = lines[2].replace(",a,", ",,", 1)
    csv_path.write_text("\n".join(lines) + "\n")
    with caplog.at_level(logging.WARNING, logger="trainer.data.corpora"):
        dataset = load_corpus(root)
    assert sorted(dataset["speaker"]) == ["", "c_a"]
    assert f"{csv_path}: 1 row(s) have no speaker (line 3)" in caplog.text


def test_classes_collapsing_to_one_is_an_error_before_anything_is_built(tmp_path):
    source = make_csv_corpus(tmp_path / "src", speakers=("01", "02"), emotions=("sad", "happy"), transcripts=("x",))
    target = make_csv_corpus(tmp_path / "tgt", speakers=("11", "12"), emotions=("sad", "angry"), transcripts=("x",))
    with pytest.raises(ValueError) as info:
        prepare_data(DataArguments(source=source, target=target), str(tmp_path / "no-model"), tmp_path / "run", seed=0)
    message = str(info.value)
    assert "only one emotion class" in message and "'sad'" in message and "--label_aliases" in message


def test_push_to_hub_without_hub_model_id_fails_before_data_is_loaded(tmp_path):
    sys.path.insert(0, str(REPO / "examples"))
    import train_ctrilora

    with pytest.raises(ValueError, match="--push_to_hub needs --hub_model_id"):
        train_ctrilora.main(["--source", str(tmp_path / "absent-src"), "--target", str(tmp_path / "absent-tgt"),
                             "--output_dir", str(tmp_path / "run"), "--push_to_hub", "--use_cpu"])


def test_a_target_smaller_than_one_batch_fails_when_the_trainer_is_built(experiment_data, tiny_whisper_dir, tmp_path):  # noqa: F811
    adaptation = len(experiment_data.target["adaptation"])
    with pytest.raises(ValueError) as info:
        make_trainer(experiment_data, tiny_whisper_dir, tmp_path / "run", target_batch_size=adaptation + 1)
    message = str(info.value)
    assert f"{adaptation} clips" in message and "--target_batch_size" in message
    assert "--target_adaptation_fraction" in message


def test_run_arguments_store_absolute_corpus_paths_and_name_a_corpus_that_moved(tmp_path, monkeypatch):
    from trainer.run import DataArguments, read_run_arguments, write_run_arguments

    (tmp_path / "corpora" / "src").mkdir(parents=True)
    (tmp_path / "corpora" / "tgt").mkdir()
    monkeypatch.chdir(tmp_path / "corpora")
    write_run_arguments(tmp_path / "run", DataArguments(source="src", target="tgt"), "openai/whisper-base")
    monkeypatch.chdir(tmp_path)  # evaluation from another working directory
    data_args, base_model = read_run_arguments(tmp_path / "run")
    assert data_args.source == str(tmp_path / "corpora" / "src") and base_model == "openai/whisper-base"
    (tmp_path / "corpora" / "tgt").rename(tmp_path / "corpora" / "target-moved")
    with pytest.raises(FileNotFoundError, match=r"data\.target .*tgt.* does not exist any more .*edit 'data\.target'"):
        read_run_arguments(tmp_path / "run")
