"""A local model per task: a FIM base model for completions, an instruct model for chat tasks.

Real llama.cpp on tiny generated GGUFs whose greedy output is known: the "base" model (FIM
tokens, no chat template) writes "x" for ever, the "chat" model (a chat template) writes "y".
So every answer says which model wrote it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from local_models.choice import ModelChoice, read_choice, update_choice
from local_models.errors import ModelError
from lsp_server.assist.prompts import AssistInput
from lsp_server.assist.run import assist
from lsp_server.completion.complete import Completer
from lsp_server.completion.prompt import CompletionInput
from lsp_server.config import ServerConfig
from lsp_server.engine.core import Engine
from lsp_server.engine.local_tier import configured_model, local_model_names
from lsp_server.explain.diff import parse_diff
from lsp_server.explain.pipeline import explain_changes
from lsp_server.ledger import Ledger
from lsp_server.routing.policy import LoadedPolicy, PolicyError, TierConfig, parse_policy
from lsp_server.routing.policy_merge import merge_repository_policy

DIFF = b"""diff --git a/calc.py b/calc.py
index 1111111..2222222 100644
--- a/calc.py
+++ b/calc.py
@@ -1,2 +1,2 @@
 def add(a, b):
-    return a - b
+    return a + b
"""


@pytest.fixture(autouse=True)
def _own_config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The user's model choice lives in the config dir: a fresh one per test, and no env pins."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    for name in ("NINETYTEN_MODEL", "NINETYTEN_CHAT_MODEL", "NINETYTEN_POLICY"):
        monkeypatch.delenv(name, raising=False)


def _policy(text: str) -> LoadedPolicy:
    return LoadedPolicy(parse_policy(text), "flag", None)


def _local(chat_model: str | None = None, draft_model: str | None = None) -> str:
    lines = ['[tiers.local]', 'backend = "llama_cpp"', 'model = "BASE"']
    if chat_model:
        lines.append(f'chat_model = "{chat_model}"')
    if draft_model:
        lines.append(f'draft_model = "{draft_model}"')
    return "\n".join(lines) + "\n"


# -- which name wins ---------------------------------------------------------------------------------


def test_precedence_settings_then_choice_then_policy():
    local = TierConfig(backend="llama_cpp", model="policy-fim", chat_model="policy-chat")
    choice = ModelChoice(completion="chosen-fim", chat="chosen-chat")
    both = ServerConfig(model="set-fim", chat_model="set-chat")
    assert configured_model("completion", both, choice, local) == "set-fim"
    assert configured_model("chat", both, choice, local) == "set-chat"
    assert configured_model("completion", ServerConfig(), choice, local) == "chosen-fim"
    assert configured_model("chat", ServerConfig(), choice, local) == "chosen-chat"
    assert configured_model("completion", ServerConfig(), ModelChoice(), local) == "policy-fim"
    assert configured_model("chat", ServerConfig(), ModelChoice(), local) == "policy-chat"
    default = TierConfig(backend="llama_cpp", model="default")
    assert configured_model("completion", ServerConfig(), ModelChoice(), default) is None  # the embedded model
    assert configured_model("chat", ServerConfig(), ModelChoice(), default) is None  # the completion model


def test_a_chat_model_of_its_own_only_when_one_is_named_and_differs(monkeypatch: pytest.MonkeyPatch):
    local = TierConfig(backend="llama_cpp", model="a")
    assert not local_model_names(ServerConfig(), local, choice=ModelChoice()).separate_chat
    assert not local_model_names(ServerConfig(chat_model="a"), local, choice=ModelChoice()).separate_chat
    assert local_model_names(ServerConfig(chat_model="b"), local, choice=ModelChoice()).separate_chat
    assert local_model_names(ServerConfig(), local, explicit_chat="b", choice=ModelChoice()).separate_chat
    monkeypatch.setenv("NINETYTEN_CHAT_MODEL", "c")
    assert local_model_names(ServerConfig(), local, choice=ModelChoice()).separate_chat
    monkeypatch.setenv("NINETYTEN_MODEL", "c")  # the same file for both: one model, loaded once
    assert not local_model_names(ServerConfig(), local, choice=ModelChoice()).separate_chat


def test_policy_keys_are_local_only_and_need_approval_from_a_repository():
    with pytest.raises(PolicyError, match="chat_model is for the local tier"):
        parse_policy(
            '[tiers.local]\nbackend = "llama_cpp"\nmodel = "default"\n'
            '[tiers.in_house]\nbackend = "openai"\nbase_url = "http://127.0.0.1:1/v1"\nmodel = "m"\n'
            'chat_model = "x"\n'
        )
    base = parse_policy(_local())
    repo = parse_policy(_local(chat_model="evil.gguf", draft_model="evil-draft.gguf"))
    merged = merge_repository_policy(base, repo)
    keys = {item.key: item.reason for item in merged.ignored}
    assert merged.policy.tier("local").chat_model is None and merged.policy.tier("local").draft_model is None
    assert "model file" in keys["tiers.local.chat_model"] and "model file" in keys["tiers.local.draft_model"]
    approved = merge_repository_policy(base, repo, trusted=True).policy.tier("local")
    assert (approved.chat_model, approved.draft_model) == ("evil.gguf", "evil-draft.gguf")


def test_the_choice_file_round_trips_and_refuses_junk(tmp_path: Path):
    path = tmp_path / "models.toml"
    assert read_choice(path) == ModelChoice()
    update_choice("completion", "qwen2.5-coder-0.5b", path)
    update_choice("chat", 'Qwen/Q "quoted":file\\name.gguf', path)
    assert read_choice(path) == ModelChoice(completion="qwen2.5-coder-0.5b", chat='Qwen/Q "quoted":file\\name.gguf')
    assert update_choice("chat", "default", path) == ModelChoice(completion="qwen2.5-coder-0.5b")
    path.write_text('completion = "a"\nsurprise = 1\n')
    with pytest.raises(ModelError, match="not valid"):
        read_choice(path)


# -- which model answers which task (real llama.cpp) -----------------------------------------------


def _engine(base: Path, tmp_path: Path, *, chat: Path | None = None, policy: str | None = None) -> Engine:
    config = ServerConfig(
        model=str(base),
        chat_model=str(chat) if chat else None,
        completion={"max_tokens": 6, "time_limit_ms": 600_000},
        assist={"max_tokens": 5},
    )
    loaded = _policy(policy or _local())
    return Engine(config, policy=loaded, ledger=Ledger(tmp_path / "ledger.sqlite3"))


def test_completions_from_the_base_model_chat_tasks_from_the_chat_model(
    base_endless_model_path: Path, chat_endless_model_path: Path, tmp_path: Path
):
    engine = _engine(base_endless_model_path, tmp_path, chat=chat_endless_model_path)
    try:
        assert engine.chat_local is not engine.local
        completion = Completer(engine).complete_blocking(
            CompletionInput(path="a.py", text="total = ", line=0, character=8)
        )
        assert completion.text == "x" * 6 and completion.model == base_endless_model_path.name
        explained = asyncio.run(assist(engine, AssistInput(task="explain", code="return a + b", path="a.py")))
        assert explained.text == "y" * 5 and explained.final.model == chat_endless_model_path.name
        # A diff's explanation follows the chat (no "review document" for a base model): no "It" cue.
        changes = parse_diff(DIFF)
        result = asyncio.run(explain_changes(engine, changes))
        assert result.explanation.startswith("y") and "x" not in result.explanation
        engine.sink.flush()
        rows = engine.sink.ledger.rows()
        assert {(row.task, row.model) for row in rows} == {
            ("completion", base_endless_model_path.name),
            ("explain", chat_endless_model_path.name),
        }
    finally:
        engine.close()


def test_without_a_chat_model_a_base_model_continues_a_review_document(base_endless_model_path: Path, tmp_path: Path):
    engine = _engine(base_endless_model_path, tmp_path)
    try:
        assert engine.chat_local is engine.local
        result = asyncio.run(explain_changes(engine, parse_diff(DIFF)))
        assert result.explanation.startswith("It") and "x" in result.explanation  # the document's cue, then x
    finally:
        engine.close()


def test_the_policy_names_the_chat_model(base_endless_model_path: Path, chat_endless_model_path: Path, tmp_path: Path):
    config = ServerConfig(completion={"max_tokens": 6}, assist={"max_tokens": 4})
    policy = _local(chat_model=str(chat_endless_model_path)).replace("BASE", str(base_endless_model_path))
    engine = Engine(config, policy=_policy(policy), ledger=None)
    try:
        answer = asyncio.run(assist(engine, AssistInput(task="ask", code="x = 1", instruction="why?")))
        assert answer.text == "yyyy" and engine.chat_model is not None
        assert engine.chat_model.path == chat_endless_model_path
    finally:
        engine.close()


def test_a_new_choice_switches_the_running_engine(
    base_endless_model_path: Path, chat_endless_model_path: Path, tmp_path: Path
):
    engine = Engine(
        ServerConfig(completion={"max_tokens": 3, "time_limit_ms": 600_000}, assist={"max_tokens": 3}),
        policy=_policy(_local().replace("BASE", "default")),
        ledger=None,
    )
    try:
        update_choice("completion", str(base_endless_model_path))
        update_choice("chat", str(chat_endless_model_path))
        assert engine.reload_local_models() == ["completion", "chat"]
        completion = Completer(engine).complete_blocking(CompletionInput(path="a.py", text="v = ", line=0, character=4))
        assert completion.text == "xxx"
        answer = asyncio.run(assist(engine, AssistInput(task="explain", code="v = 1")))
        assert answer.text == "yyy"
        assert engine.reload_local_models() == []  # nothing changed: nothing reloaded
        update_choice("chat", "default")  # back to one model for everything
        assert engine.reload_local_models() == ["chat"] and engine.chat_local is engine.local
    finally:
        engine.close()
