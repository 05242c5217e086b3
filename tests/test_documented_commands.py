"""Every command in README.md and BENCHMARKS.md names a script that exists and only options that script accepts.

The commands are read from the fenced code blocks (continuation lines joined); for each call of a script under
`examples/` or `benchmarks/`, or of `ctrilora <subcommand>`, every `--option` must appear in that script's `--help`.
Running the commands themselves needs real corpora and minutes to hours each; this catches the drift a move or a
rename leaves behind (a path, a renamed flag).
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = ("README.md", "BENCHMARKS.md")
SCRIPT = re.compile(r"^(examples|benchmarks)/[\w/]+\.py$")


def _commands(document: str) -> list[str]:
    blocks, current = [], None
    for line in (REPO / document).read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            if current is None:
                current = [] if line.strip().strip("`") in ("", "bash", "sh", "console", "shell") else False
            else:
                if current is not False:
                    blocks.append("\n".join(current))
                current = None
        elif current is not None and current is not False:
            current.append(line)
    commands = []
    for block in blocks:
        joined = re.sub(r"\\\n\s*", " ", block)
        commands.extend(line.split(" # ")[0].strip() for line in joined.splitlines() if line.strip())
    return commands


def _calls(command: str) -> list[tuple[str, list[str]]]:
    """(script or `ctrilora SUB`, its --options) for every call in a shell line."""
    calls = []
    for part in re.split(r"&&|\|\||;|\|", command):
        try:
            words = shlex.split(part, comments=True)
        except ValueError:
            continue
        for index, word in enumerate(words):
            target = None
            if SCRIPT.match(word):
                target = word
            elif word.endswith("ctrilora") and index + 1 < len(words) and not words[index + 1].startswith("-"):
                target = f"ctrilora {words[index + 1]}"
            if target:
                rest = words[index + 1 :]
                # run_ablations passes what follows a bare `--` to every training run (examples/train_ctrilora.py).
                split = rest.index("--") if "--" in rest else len(rest)
                own, forwarded = rest[:split], rest[split + 1 :]
                for name, part in ((target, own), ("examples/train_ctrilora.py", forwarded)):
                    options = [w.split("=")[0] for w in part if w.startswith("--") and len(w) > 2]
                    if part or name == target:
                        calls.append((name, options))
                break
    return calls


@lru_cache(maxsize=None)
def _help(target: str) -> str:
    if target.startswith("ctrilora "):
        argv = [sys.executable, "-m", "modeling_ctrilora.cli", target.split()[1], "--help"]
    else:
        argv = [sys.executable, str(REPO / target), "--help"]
    done = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, f"{target} --help failed:\n{done.stderr[-2000:]}"
    return done.stdout


CALLS = sorted({(document, target, tuple(options)) for document in DOCUMENTS for command in _commands(document)
                for target, options in _calls(command)})


@pytest.fixture(scope="module", autouse=True)
def _helps_in_parallel():
    # Each `--help` is a fresh interpreter importing torch and transformers (seconds each): start them together.
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(_help, sorted({target for _, target, _ in CALLS})))


def test_the_documents_have_commands_to_check():
    assert any(target.startswith("ctrilora ") for _, target, _ in CALLS)
    assert any(target.startswith("examples/") for _, target, _ in CALLS)


@pytest.mark.parametrize("document,target,options", CALLS, ids=[f"{d}:{t}" for d, t, _ in CALLS])
def test_documented_command_names_an_existing_script_and_known_options(document, target, options):
    if not target.startswith("ctrilora "):
        assert (REPO / target).is_file(), f"{document}: {target} does not exist"
    usage = _help(target)
    unknown = [option for option in options if not re.search(rf"{re.escape(option)}\b", usage)]
    assert not unknown, f"{document}: {target} does not accept {unknown}"
