"""Shared model fixtures: real GGUF files for tests that run real llama.cpp.

Plain pytest fixtures; tests/conftest.py re-exports them with
`from tests.conftest_models import *`.

Files live under a fixed directory in pytest's base temp dir and are only built when
missing, so a fixture imported into several modules still builds each file once.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from local_models import build_tiny_model, embedded_model_path

__all__ = [
    "download_model_path",
    "endless_model_path",
    "base_endless_model_path",
    "chat_endless_model_path",
    "gemma_model_path",
    "ninetyten_test_home",
    "tiny_model_path",
    "unsure_model_path",
    "unsure_word_model_path",
]


def _shared_dir(factory: pytest.TempPathFactory, name: str) -> Path:
    path = factory.getbasetemp() / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def _tiny(factory: pytest.TempPathFactory, file_name: str, **kwargs: object) -> Path:
    path = _shared_dir(factory, "tiny-models") / file_name
    if not path.exists():
        build_tiny_model(path, **kwargs)  # type: ignore[arg-type]
    return path


@pytest.fixture(scope="session")
def ninetyten_test_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A NINETYTEN_HOME for the session (models/ inside it); point subprocesses here."""
    home = _shared_dir(tmp_path_factory, "ninetyten-home")
    (home / "models").mkdir(exist_ok=True)
    return home


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny random qwen2 model (seed 0) with Qwen FIM tokens; generates arbitrary text."""
    return _tiny(tmp_path_factory, "tiny-qwen2.gguf", seed=0)


@pytest.fixture(scope="session")
def endless_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny model whose greedy output is "x" forever: never a newline, never EOS."""
    return _tiny(tmp_path_factory, "tiny-qwen2-endless-x.gguf", seed=0, favour="x")


@pytest.fixture(scope="session")
def base_endless_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A "base" model: FIM tokens, no chat template, greedy output "x" for ever."""
    return _tiny(tmp_path_factory, "tiny-qwen2-base-x.gguf", seed=0, favour="x", chat_template=None)


@pytest.fixture(scope="session")
def chat_endless_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An "instruct" model: a chat template, greedy output "y" for ever (same vocabulary as the others)."""
    return _tiny(tmp_path_factory, "tiny-qwen2-chat-y.gguf", seed=1, favour="y")


@pytest.fixture(scope="session")
def unsure_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny model whose greedy output is " x" forever at under 50 % probability, " y" a close
    second at every step: an unsure model, so alternatives branch at its first token; and its
    suggestions are words (" x x x"), for partial accepts."""
    return _tiny(tmp_path_factory, "tiny-qwen2-unsure-xy.gguf", seed=0, favour=" x", runner_up=" y")


@pytest.fixture(scope="session")
def unsure_word_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Like unsure_model_path, with "y" (no space) the close second: the alternative shares no
    start with the best suggestion, so accepting its first word says which one was taken."""
    return _tiny(tmp_path_factory, "tiny-qwen2-unsure-x-y.gguf", seed=0, favour=" x", runner_up="y")


@pytest.fixture(scope="session")
def gemma_model_path(ninetyten_test_home: Path) -> Path:
    """The embedded Gemma 3 270M, assembled (once) into ninetyten_test_home/models."""
    return embedded_model_path(progress=False, directory=ninetyten_test_home / "models")


@pytest.fixture(scope="session")
def download_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 33 MB tiny model (seed 1, wider): more than one of huggingface_hub's 10 MiB download
    chunks, so a transfer cut half-way has something to resume from."""
    return _tiny(tmp_path_factory, "tiny-qwen2-wide.gguf", seed=1, n_embd=512, n_head=8, n_head_kv=2, n_ff=2048)
