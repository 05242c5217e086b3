"""Serve saved model folders as Hub repositories on 127.0.0.1 with `olah`, so Hub-id loading works without Hub access.

`olah` (PyPI, `pip install olah`) is a Hub mirror server; in offline mode it serves git repositories from a mirror
folder through the Hub's HTTP API, which `huggingface_hub` and transformers use unchanged once `HF_ENDPOINT` points at
it. Used by the Hub download tests and by `examples/serve_local_hub.py`.

olah's mirror layout (olah 0.5, `olah/server_mirror.py`, `olah/mirror/repos.py`): `<mirrors-path>/<repo_type>/<org>/
<name>` is a git repository (non-bare; files committed as plain blobs — an LFS pointer would be served from
`.git/lfs/objects`); revisions are resolved with `git rev-parse`, the API answers (`/api/models/<id>/revision/main`,
`tree`, `paths-info`) come from the commit. `mirrors-path` and `offline` are only settable in a TOML config.
One gap: a file *absent* from the mirror at a branch name is answered `401 RepoNotFound` (olah looks the branch up in
its own proxy cache, which mirror hits never fill), where the Hub answers `404 EntryNotFound` — and transformers probes
optional files (`processor_config.json`, `chat_template.jinja`, …) and treats the 401 as a missing repo. So
`stage_repository` also records `main → <commit>` in olah's revision cache with olah's own helpers, as an online olah
does after resolving a branch; olah then answers missing files with the Hub's 404 EntryNotFound.

Example:
    >>> from hub_cards.local_hub import serve_olah, stage_repository
    >>> stage_repository("runs/demo/export", "/tmp/hub", "me/ctrilora-demo")  # doctest: +SKIP
    >>> with serve_olah("/tmp/hub") as server:  # doctest: +SKIP
    ...     print(server.endpoint)  # export HF_ENDPOINT=… and load "me/ctrilora-demo"
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

from .run_folder import RunFolder

MIRRORS_FOLDER = "mirrors"
REPOS_FOLDER = "repos"
COMMIT_MESSAGE = "Upload C-TriLoRA model, processor and model card"


def find_olah_cli() -> str | None:
    """The `olah-cli` beside the running Python first (a venv not on PATH), then PATH; `None` when not installed."""
    beside_python = Path(sys.executable).with_name("olah-cli")
    return str(beside_python) if beside_python.is_file() else shutil.which("olah-cli")


def _git(*args: str, cwd: Path) -> str:
    command = ["git", "-c", "user.name=ctrilora", "-c", "user.email=ctrilora@localhost.invalid",
               "-c", "commit.gpgsign=false", *args]
    return subprocess.run(command, cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def _record_branch(root: Path, repo_id: str, revision: str, sha: str) -> None:
    """Write olah's `revision → commit` record so missing files get the Hub's 404 (see the module docstring)."""
    from olah.utils.cache_utils import write_cache_request
    from olah.utils.repo_utils import get_resolved_commit_save_path

    org, name = repo_id.split("/")
    path = get_resolved_commit_save_path(str(root / REPOS_FOLDER), "models", org, name, revision)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    asyncio.run(write_cache_request(path, 200, {}, sha.encode("ascii")))


def stage_repository(folder: str | os.PathLike, root: str | os.PathLike, repo_id: str) -> str:
    """Commit the files of `folder` as model repo `repo_id` (branch main) under the server root; returns the sha.

    `folder` is what a push would upload, e.g. `hub.save_pretrained_with_card`'s output. An existing repository of
    that id under `root` is an error (stage into a fresh root).
    """
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ValueError(f"repo_id {repo_id!r}: expected ORG/NAME")
    folder, root = Path(folder), Path(root)
    if not RunFolder(folder).config.is_file():
        raise FileNotFoundError(f"{folder} has no config.json; expected a saved model folder")
    repository = root / MIRRORS_FOLDER / "models" / repo_id
    if repository.exists():
        raise FileExistsError(f"{repository} already exists; stage into a fresh root")
    shutil.copytree(folder, repository)
    _git("init", "-q", cwd=repository)
    _git("add", "-A", cwd=repository)
    _git("commit", "-q", "-m", COMMIT_MESSAGE, cwd=repository)
    _git("branch", "-M", "main", cwd=repository)  # whatever the local git's default branch name is
    sha = _git("rev-parse", "HEAD", cwd=repository)
    _record_branch(root, repo_id, "main", sha)
    return sha


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_serving(endpoint: str, process: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"olah-cli exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{endpoint}/api/models/-/-/revision/main", timeout=2):
                return
        except urllib.error.HTTPError:  # any HTTP answer (here: repo not found) means the server is up
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    raise RuntimeError(f"olah-cli did not answer on {endpoint} within {timeout} s:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def serve_olah(root: str | os.PathLike, port: int | None = None, timeout: float = 60) -> Iterator[SimpleNamespace]:
    """Run `olah-cli` offline on 127.0.0.1 over the repositories staged under `root`; stopped (by pid) on exit.

    Yields `endpoint` (for `HF_ENDPOINT`), `process` and `log` (olah's output file).
    """
    olah_cli = find_olah_cli()
    if olah_cli is None:
        raise RuntimeError("olah-cli is not installed: pip install olah (it is in ctrilora's [dev] extra)")
    root = Path(root).resolve()
    port = port or _free_port()
    config = root / "olah.toml"
    config.write_text(
        "[basic]\n"
        'host = "127.0.0.1"\n'
        f"port = {port}\n"
        f"repos-path = {json.dumps(str(root / REPOS_FOLDER))}\n"
        f"mirrors-path = [{json.dumps(str(root / MIRRORS_FOLDER))}]\n"
        "[accessibility]\n"
        "offline = true\n"
    )
    log = root / "olah.log"
    with open(log, "wb") as log_file:
        process = subprocess.Popen(
            [olah_cli, "--config", str(config), "--log-path", str(root / "logs")],
            cwd=root, stdout=log_file, stderr=subprocess.STDOUT,
        )
    try:
        endpoint = f"http://127.0.0.1:{port}"
        _wait_until_serving(endpoint, process, log, timeout)
        yield SimpleNamespace(endpoint=endpoint, process=process, log=log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


__all__ = ["find_olah_cli", "serve_olah", "stage_repository"]
