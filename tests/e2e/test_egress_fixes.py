"""Egress holes found by trying to get content out as an attacker would (issue: a cloned
repository cannot take your keys or your code), each reproduced against a real local model
and a loopback frontier that records every request:

* `on_sensitive = "redact"` sent a file under a sensitive path glob out whole (path findings
  have no span to redact);
* an escalated completion never applied the redaction its egress check asked for;
* an explain chunk was routed by its first file only, a rename by its new name only;
* merge and commit-message steps sent on what the local model wrote about chunks that had
  been kept home.

Policies here are passed with `--policy` (or built in-process): they are the user's own, so
trust is not what is tested.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from lsp_server.config import ServerConfig
from lsp_server.engine.core import Engine
from lsp_server.explain.diff import parse_diff
from lsp_server.explain.pipeline import explain_changes
from lsp_server.routing.policy import LoadedPolicy, parse_policy
from tests.e2e.test_routing_server import KEY, KEY_ENV, _as_dict, request
from tests.loopback_provider import LoopbackProvider
from tests.lsp_session import inline, lsp_session, open_document

AWS_KEY = "AKIAZ7QRT2LXW4PN3KVD"
# Nothing a scanner could find: only the path says this is sensitive.
LAUNCH_CODE = "plumtree-4471"


def frontier_policy(url: str, *, on_sensitive: str = "keep_home", extra: str = "") -> str:
    return f"""version = 1

[tiers.local]
backend = "llama_cpp"
model = "default"

[tiers.frontier]
backend = "anthropic"
base_url = "{url}"
model = "claude-test"
api_key_env = "{KEY_ENV}"
timeout_s = 5
connect_timeout_s = 1
max_retries = 0

[sensitivity]
paths = ["secrets/**"]
on_sensitive = "{on_sensitive}"

[[rules]]
name = "everything but completions goes out"
task = ["explain", "refactor", "ask", "commit_message"]
route = "frontier"

[[rules]]
name = "completions escalate"
task = ["completion"]
route = "local"
escalate_to = "frontier"

[escalation]
completion_min_mean_logprob = -0.0001
{extra}"""


def bodies(frontier: LoopbackProvider) -> list[str]:
    return [r.raw.decode("utf-8", "replace") for r in frontier.requests]


@pytest.fixture
def frontier(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    with LoopbackProvider(reply="It tidies the module.") as provider:
        yield provider


# -- redact mode and escalated completions, through the real server ------------------------


async def test_redact_mode_keeps_files_under_sensitive_paths_home(frontier, endless_model_path, tmp_path):
    policy = tmp_path / "policy.toml"
    policy.write_text(frontier_policy(frontier.url, on_sensitive="redact"))
    workspace = tmp_path / "ws"
    (workspace / "secrets").mkdir(parents=True)
    async with lsp_session(
        model=endless_model_path,
        home=tmp_path / "home",
        root=workspace,
        options={"assist": {"max_tokens": 8}},
        extra_args=["--policy", str(policy)],
    ) as client:
        # Redaction has nothing to replace in a file that is sensitive for its path: it stays home.
        launch = open_document(client, workspace / "secrets" / "launch.py", f'CODE = "{LAUNCH_CODE}"\n')
        answer = _as_dict(await request(client, "ninetyten/refactor", launch, instruction="tidy"))
        assert answer["decision"]["sensitivity"] == "sensitive"
        assert answer["tier"] == "local", answer["decision"]["reasons"]
        # A clean file with the same request does go out (the frontier is reachable and used).
        clean = open_document(client, workspace / "clean.py", "def f():\n    return 1\n")
        assert _as_dict(await request(client, "ninetyten/refactor", clean, instruction="tidy"))["tier"] == "frontier"
    assert frontier.requests and not any(LAUNCH_CODE in body for body in bodies(frontier))


async def test_an_escalated_completion_is_redacted(frontier, endless_model_path, tmp_path):
    policy = tmp_path / "policy.toml"
    policy.write_text(frontier_policy(frontier.url, on_sensitive="redact"))
    workspace = tmp_path / "ws"
    workspace.mkdir()
    async with lsp_session(
        model=endless_model_path,
        home=tmp_path / "home",
        root=workspace,
        # a generous time box: a fragment cut by it is not shown, so nothing escalates
        options={"completion": {"max_tokens": 4, "cache_size": 0, "time_limit_ms": 30000}},
        extra_args=["--policy", str(policy)],
    ) as client:
        source = f'AWS_KEY = "{AWS_KEY}"\n\n\ndef region():\n    return '
        uri = open_document(client, workspace / "cloud.py", source)
        await inline(client, uri, 4, len("    return "))
    sent = [body for body in bodies(frontier) if "<CURSOR>" in body]
    assert sent, "the completion never escalated: the test would prove nothing"
    assert all(AWS_KEY not in body for body in sent)
    assert any("[REDACTED:" in body for body in sent)


# -- explain chunks, in-process (a small context makes several chunks) --------------------


def diff_for(*files: tuple[str, str], renamed_from: str | None = None) -> str:
    parts = []
    for path, text in files:
        lines = text.splitlines()
        if renamed_from is not None:
            parts.append(
                f"diff --git a/{renamed_from} b/{path}\nsimilarity index 60%\n"
                f"rename from {renamed_from}\nrename to {path}\n--- a/{renamed_from}\n+++ b/{path}\n"
                f"@@ -1 +1,{len(lines)} @@\n-old\n" + "".join(f"+{line}\n" for line in lines)
            )
            continue
        parts.append(
            f"diff --git a/{path} b/{path}\nnew file mode 100644\n--- /dev/null\n+++ b/{path}\n"
            f"@@ -0,0 +1,{len(lines)} @@\n" + "".join(f"+{line}\n" for line in lines)
        )
    return "".join(parts)


def clean_module(name: str, lines: int) -> str:
    return "\n".join(f"def {name}_{i}(value):\n    return value + {i}" for i in range(lines))


def explain_in_process(model: Path, policy_text: str, diff: str, *, commit_message: bool = True):  # type: ignore[no-untyped-def]
    config = ServerConfig(n_ctx=1024, assist={"max_tokens": 16})
    engine = Engine(config, explicit_model=str(model), policy=LoadedPolicy(parse_policy(policy_text), "flag", None))
    engine.start()
    try:
        return asyncio.run(explain_changes(engine, parse_diff(diff.encode()), commit_message=commit_message))
    finally:
        engine.close()


def test_a_chunk_is_routed_by_every_file_in_it(frontier, endless_model_path):
    # One small chunk: a clean file first, then a file under secrets/ (only its path is sensitive).
    diff = diff_for(
        ("src/app.py", "def add(a, b):\n    return a + b"), ("secrets/launch.txt", f"launch code: {LAUNCH_CODE}")
    )
    result = explain_in_process(endless_model_path, frontier_policy(frontier.url), diff)
    assert result.chunks == 1
    assert not any(LAUNCH_CODE in body for body in bodies(frontier))
    assert result.results[0].decision.sensitivity == "sensitive"


def test_a_rename_is_routed_by_its_old_name_too(frontier, endless_model_path):
    diff = diff_for(("docs/launch.txt", f"launch code: {LAUNCH_CODE}"), renamed_from="secrets/launch.txt")
    result = explain_in_process(endless_model_path, frontier_policy(frontier.url), diff)
    assert not any(LAUNCH_CODE in body for body in bodies(frontier))
    assert result.results[0].decision.sensitivity == "sensitive"


def test_what_the_local_model_wrote_about_kept_home_chunks_stays_home(frontier, endless_model_path):
    # Two chunks: the secret file (kept home, explained locally) and a clean module (sent out).
    diff = diff_for(
        ("secrets/launch.txt", "\n".join(f"launch code {i}: {LAUNCH_CODE}" for i in range(20))),
        ("src/clean.py", clean_module("clean", 30)),
    )
    result = explain_in_process(endless_model_path, frontier_policy(frontier.url), diff)
    assert result.chunks == 2
    sent = bodies(frontier)
    assert any("clean_1" in body for body in sent), "the clean chunk should go out: the test would prove nothing"
    # The merge and the commit message are made from the local explanation of the secret chunk.
    assert not any("explanations of the parts" in body for body in sent)
    assert not any("Write the git commit message" in body for body in sent)
    tiers = {a.tier for r in result.results[2:] for a in r.attempts}
    assert tiers == {"local"}, tiers
    assert all(LAUNCH_CODE not in body for body in sent)


def test_clean_chunks_still_merge_and_write_the_message_remotely(frontier, endless_model_path):
    """The other side of the test above: without a kept-home chunk the same steps go out."""
    diff = diff_for(("src/one.py", clean_module("one", 30)), ("src/two.py", clean_module("two", 30)))
    result = explain_in_process(endless_model_path, frontier_policy(frontier.url), diff)
    assert result.chunks >= 2
    sent = bodies(frontier)
    assert any("explanations of the parts" in body for body in sent)
    assert any("Write the git commit message" in body for body in sent)
    assert json.dumps(result.to_json())  # serialisable as `ninetyten explain --json` prints it
