from lsp_server.assist.prompts import AssistInput, extract_code, messages_for
from lsp_server.engine.jobs import ChatJob
from lsp_server.routing.escalation import brackets_balanced, completion_confident, parses, verify


def test_python_syntax_check():
    assert parses("def f(x):\n    return x\n", "python")
    assert parses("    return x + 1\n", "python")  # an indented selection from a body
    assert not parses("def f(x)\n    return x\n", "python")


def test_bracket_check_for_other_languages():
    assert brackets_balanced("function f(a) { return [a, {b: 1}]; }")
    assert brackets_balanced('s = "(";  // )')  # brackets in strings and comments do not count
    assert not brackets_balanced("if (x { y(); }")
    assert parses("fn main() { }", "rust") and not parses("fn main() { ", "rust")


def test_verify_reports_failed_checks():
    assert verify("def f(:\n", ["syntax", "non_empty"], kind="code", language="python") == ["syntax"]
    assert verify("   ", ["syntax", "non_empty"], kind="code", language="python") == ["non_empty"]
    assert verify("It adds two numbers and returns the sum.", ["syntax", "non_empty"], kind="prose") == []
    assert verify("x" * 10, ["length"], kind="code", original_length=1000) == ["length"]
    assert verify("ok", ["length"], kind="prose") == ["length"]


def test_completion_confidence():
    assert completion_confident(-0.5, -1.2)
    assert not completion_confident(-2.0, -1.2)
    assert not completion_confident(None, -1.2)


def test_extract_code_from_fenced_answer():
    assert extract_code("```python\ndef f():\n    pass\n```") == "def f():\n    pass"
    assert extract_code("Here you go:\n```\nx = 1\n```\nDone.") == "x = 1"
    assert extract_code("x = 1\n") == "x = 1"


def test_prompts_carry_the_code_and_instruction():
    inp = AssistInput("refactor", "x=1", path="a.py", language="python", instruction="use snake case")
    messages = messages_for(inp)
    assert messages[0].role == "system" and "use snake case" in messages[1].content and "x=1" in messages[1].content
    again = ChatJob(task="refactor", messages=messages).retry("draft", ["syntax"])
    assert [m.role for m in again] == ["system", "user", "assistant", "user"]
    assert "syntax" in again[-1].content


def test_repetition_guard_cuts_loops():
    from lsp_server.backends.llama_cpp.chat_template import stop_on_repetition

    check = stop_on_repetition()
    text = "intro\nsame line\nother\nsame line\nsame line\n"
    cut = check(text)
    assert cut is not None and text[:cut] == "intro\nsame line\nother"
    assert check("a\nb\nc\n") is None


def test_min_token_threshold_catches_one_unsure_token():
    assert completion_confident(-0.3, -0.5, token_logprobs=[-0.1, -0.2, -0.6])  # off by default
    assert not completion_confident(-0.3, -0.5, token_logprobs=[-0.1, -0.2, -3.0], min_token_threshold=-2.0)
    assert completion_confident(-0.3, -0.5, token_logprobs=[-0.1, -0.2, -1.5], min_token_threshold=-2.0)
    assert not completion_confident(-0.9, -0.5, token_logprobs=[-0.9], min_token_threshold=-2.0)  # mean still counts
