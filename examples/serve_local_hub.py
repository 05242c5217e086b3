#!/usr/bin/env python
"""Serve a trained run folder as a Hub repository on 127.0.0.1 (olah, offline), to try Hub-id loading without the Hub.

    python examples/serve_local_hub.py --model_dir runs/ctrilora --repo_id me/ctrilora-demo
    # in another shell, with the printed endpoint and an empty cache:
    HF_ENDPOINT=http://127.0.0.1:PORT HF_HOME=$(mktemp -d) ctrilora predict clip.wav --model me/ctrilora-demo

The repository holds exactly what `examples/train_ctrilora.py --push_to_hub` uploads (`hub.save_pretrained_with_card`:
weights, config, processor, the model card filled from `<model_dir>/evaluation/results.json` when it exists, that
results file and the card's plots). The server runs until Ctrl-C / SIGTERM. Needs `olah` (in the `[dev]` extra).
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
from pathlib import Path

from transformers import WhisperProcessor

from hub_cards.local_hub import serve_olah, stage_repository
from hub_cards.push import save_pretrained_with_card
from hub_cards.run_folder import RunFolder
from modeling_ctrilora import WhisperForTriLoRA


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_dir", required=True, help="A run folder or saved model (config.json, weights, processor).")
    parser.add_argument("--repo_id", required=True, help="The Hub id to serve it under, ORG/NAME.")
    parser.add_argument("--root", default=None, help="Empty folder for the mirror and olah's files (default: a temp dir).")
    parser.add_argument("--port", type=int, default=None, help="Port on 127.0.0.1 (default: a free one).")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    run = RunFolder(args.model_dir)
    root = Path(args.root or tempfile.mkdtemp(prefix="ctrilora-hub-"))
    model = WhisperForTriLoRA.from_pretrained(run.root)
    results = run.evaluation.results
    export = root / "export"
    save_pretrained_with_card(
        model, export, processor=WhisperProcessor.from_pretrained(run.root),
        results=results if results.is_file() else None, repo_id=args.repo_id,
    )
    sha = stage_repository(export, root / "hub", args.repo_id)
    # SIGTERM (kill PID) should stop olah too, like Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with serve_olah(root / "hub", port=args.port) as server:
        print(f"serving {args.repo_id} (commit {sha[:10]}) from {export}; olah-cli pid {server.process.pid}", flush=True)
        print(f"HF_ENDPOINT={server.endpoint}", flush=True)
        try:
            server.process.wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
