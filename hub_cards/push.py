"""Publish a C-TriLoRA checkpoint to the Hugging Face Hub together with its filled model card.

`PreTrainedModel.push_to_hub` uploads the weights and then writes a README of its own, so a card pushed before it is
overwritten, and pushing model, processor and card separately makes three commits, with windows in which the repo
holds weights without their card. Here everything a user needs — weights and config, the feature extractor /
tokenizer, the README.md filled from the run's `results.json`, `results.json` itself and the plots the card shows — is
written to one staging folder (`save_pretrained_with_card`) and uploaded as a single commit with
`HfApi.upload_folder`, after `create_repo(exist_ok=True)`. Nothing else writes a README, so the card is ours.

Example:
    >>> from transformers import WhisperProcessor
    >>> from modeling_ctrilora import WhisperForTriLoRA
    >>> from hub_cards.push import push_to_hub_with_card
    >>> model = WhisperForTriLoRA.from_pretrained("runs/full/checkpoint-500")  # doctest: +SKIP
    >>> processor = WhisperProcessor.from_pretrained("openai/whisper-base")  # doctest: +SKIP
    >>> push_to_hub_with_card(model, "me/ctrilora-kazemotts", processor=processor,
    ...                       results="runs/full/evaluation/results.json")  # doctest: +SKIP
    'https://huggingface.co/me/ctrilora-kazemotts/commit/...'
"""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

from huggingface_hub import HfApi, ModelCard
from transformers.utils import logging

from modeling_ctrilora import WhisperForTriLoRA

from .model_card import build_model_card
from .results import load_results, write_results
from .run_folder import RunFolder

logger = logging.get_logger(__name__)

DEFAULT_COMMIT_MESSAGE = "Upload C-TriLoRA model, processor and model card"


def _resolve_results(results: Mapping[str, Any] | str | os.PathLike | None) -> tuple[dict[str, Any], Path]:
    """(results dict, folder its relative plot paths are relative to): the file's folder, or the working directory."""
    if results is None:
        return {}, Path.cwd()
    if isinstance(results, (str, os.PathLike)):
        return load_results(results), Path(results).resolve().parent
    return copy.deepcopy(dict(results)), Path.cwd()


def _complete_from_model(results: dict[str, Any], model: WhisperForTriLoRA) -> dict[str, Any]:
    """Fill what the model itself knows (preset, trainable share, emotions) where the results do not say."""
    section = results.setdefault("model", {})
    section.setdefault("preset", model.config.preset)
    section.setdefault("trainable_fraction", model.trainable_parameter_report()["fraction"])
    results.setdefault("emotions", [model.config.id2label[index] for index in sorted(model.config.id2label)])
    return results


def _stage_plots(results: dict[str, Any], base: Path, folder: RunFolder) -> None:
    """Copy the plots into `folder.card_plots` and point the results at the copies; drop (and log) missing ones.

    Plots are renamed after their key so two runs' `confusion.png` in different folders cannot collide and no path
    escapes the repo.
    """
    staged = {}
    for name, path in (results.get("plots") or {}).items():
        source = Path(path) if Path(path).is_absolute() else base / path
        if not source.is_file():
            logger.warning(f"plot {name!r} not found at {source}; left out of the upload and the card")
            continue
        target = folder.card_plots / f"{name}{source.suffix}"
        target.parent.mkdir(exist_ok=True)
        shutil.copyfile(source, target)
        staged[name] = target.relative_to(folder.root).as_posix()
    if "plots" in results:
        results["plots"] = staged


def _save_processors(processor: Any | Sequence[Any] | None, folder: Path) -> None:
    processors = processor if isinstance(processor, (list, tuple)) else [processor]
    for item in processors:
        if item is not None:
            item.save_pretrained(folder)


def save_pretrained_with_card(
    model: WhisperForTriLoRA,
    save_directory: str | os.PathLike,
    *,
    processor: Any | Sequence[Any] | None = None,
    results: Mapping[str, Any] | str | os.PathLike | None = None,
    card: ModelCard | None = None,
    repo_id: str | None = None,
) -> list[str]:
    """Write a complete, card-carrying checkpoint folder: what `push_to_hub_with_card` uploads.

    Args:
        model: the model (`save_pretrained`: config, safetensors weights, generation config).
        save_directory: folder to write (created if needed).
        processor: a `WhisperProcessor`, feature extractor or tokenizer — or several — saved beside the weights so
            `AutoProcessor` / `AutoFeatureExtractor.from_pretrained` work on the folder.
        results: the run's `results.json` (path or dict). Its plots (relative to the file's folder, or to the working
            directory for a dict) are copied to `plots/`; `results.json` is written beside the card.
        card: a ready card; by default one is built with `hub_cards.build_model_card(results, repo_id=repo_id)`,
            with preset, trainable share and emotions taken from the model where the results lack them.
        repo_id: the Hub id the card's usage snippets name.

    Returns:
        The relative paths of every file written, sorted.

    Example:
        >>> save_pretrained_with_card(model, "export", processor=processor, results="run/results.json")  # doctest: +SKIP
        ['README.md', 'config.json', 'generation_config.json', 'model.safetensors', ..., 'results.json']
    """
    folder = RunFolder(save_directory)
    folder.root.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder.root)
    _save_processors(processor, folder.root)
    write_model_card(model, folder.root, results=results, card=card, repo_id=repo_id)
    return sorted(path.relative_to(folder.root).as_posix() for path in folder.root.rglob("*") if path.is_file())


def write_model_card(
    model: WhisperForTriLoRA,
    save_directory: str | os.PathLike,
    *,
    results: Mapping[str, Any] | str | os.PathLike | None = None,
    card: ModelCard | None = None,
    repo_id: str | None = None,
) -> Path:
    """Write the card part of a checkpoint folder: `README.md`, the `results.json` it was filled from and its plots.

    `save_pretrained_with_card` calls it after saving the model; the training script calls it on the run folder
    after `Trainer.save_model`, so a finished run folder is ready to upload as it is.

    Args:
        model: the model the card describes (preset, trainable share and emotions where the results lack them).
        save_directory: the checkpoint folder (a `RunFolder` root).
        results, card, repo_id: as in `save_pretrained_with_card`.

    Returns:
        The path of the written `README.md`.
    """
    folder = RunFolder(save_directory)
    folder.root.mkdir(parents=True, exist_ok=True)
    resolved, base = _resolve_results(results)
    if results is not None:
        _stage_plots(resolved, base, folder)
        write_results(resolved, folder.card_results, complete=False)
    if card is None:
        card = build_model_card(_complete_from_model(resolved, model), repo_id=repo_id,
                                adaptation=getattr(model.config, "adaptation", None))
    card.save(folder.model_card)
    return folder.model_card


def push_to_hub_with_card(
    model: WhisperForTriLoRA,
    repo_id: str,
    *,
    processor: Any | Sequence[Any] | None = None,
    results: Mapping[str, Any] | str | os.PathLike | None = None,
    card: ModelCard | None = None,
    token: str | bool | None = None,
    private: bool | None = None,
    commit_message: str = DEFAULT_COMMIT_MESSAGE,
    revision: str | None = None,
    create_pr: bool = False,
) -> str:
    """Push model, processor, filled model card, `results.json` and plots to `repo_id` in one commit.

    Why not `model.push_to_hub` + `card.push_to_hub`: transformers writes its own README when it pushes, so the card
    must come after it, and three separate commits leave the repo half-published in between. One staging folder and
    one `upload_folder` commit avoid both (see the module docstring).

    Args:
        model: the trained model.
        repo_id: `"namespace/name"` (or `"name"` for the token's own namespace); created if missing.
        processor, results, card: as in `save_pretrained_with_card`.
        token: Hub token; `None` uses the logged-in one.
        private: visibility when the repo is created (an existing repo keeps its own).
        commit_message: message of the single commit.
        revision: branch to commit to (default: the repo's default branch).
        create_pr: open a pull request instead of committing to the branch.

    Returns:
        The commit URL (the pull-request URL with `create_pr=True`; the repo URL if the Hub reports neither).

    Example:
        >>> push_to_hub_with_card(model, "me/ctrilora-ravdess-emodb", processor=processor,
        ...                       results="runs/full/evaluation/results.json", private=True)  # doctest: +SKIP
    """
    api = HfApi(token=token)
    repo_url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    with tempfile.TemporaryDirectory(prefix="ctrilora-push-") as folder:
        save_pretrained_with_card(
            model, folder, processor=processor, results=results, card=card, repo_id=repo_url.repo_id
        )
        commit = api.upload_folder(
            repo_id=repo_url.repo_id,
            folder_path=folder,
            repo_type="model",
            commit_message=commit_message,
            revision=revision,
            create_pr=create_pr,
        )
    return commit.pr_url or commit.commit_url or str(repo_url)


__all__ = ["DEFAULT_COMMIT_MESSAGE", "push_to_hub_with_card", "save_pretrained_with_card", "write_model_card"]
