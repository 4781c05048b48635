"""Params of the custom requests and commands, validated at the edge (pydantic)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Params(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class Pos(_Params):
    line: int = Field(ge=0)
    character: int = Field(ge=0)


class Range(_Params):
    start: Pos
    end: Pos


class Doc(_Params):
    uri: str


class AssistParams(_Params):
    """Params of ninetyten/explain, ninetyten/refactor and ninetyten/ask."""

    text_document: Doc = Field(alias="textDocument")
    range: Range | None = None
    instruction: str = Field("", max_length=4000)
    question: str = Field("", max_length=4000)
    apply: bool = False


class WarmParams(_Params):
    """Params of ninetyten/warm: the focused document and its cursor."""

    text_document: Doc = Field(alias="textDocument")
    position: Pos


class Location(_Params):
    uri: str = Field(max_length=4096)
    range: Range


class DefinitionsParams(_Params):
    """Params of ninetyten/definitions: definitions of the symbols at the cursor, from the
    editor's other language servers."""

    text_document: Doc = Field(alias="textDocument")
    definitions: list[Location] = Field(default_factory=list, max_length=64)


class ContextParams(_Params):
    """Params of ninetyten/context: a position whose completion context is wanted."""

    text_document: Doc = Field(alias="textDocument")
    position: Pos


class AcceptedParams(_Params):
    """Arguments of the ninetyten.completionAccepted command: which suggestion (the request and
    which of its alternatives), and for a partial accept how much of it was kept so far (counts:
    characters and words kept of those shown)."""

    request_id: str = Field(alias="requestId", min_length=1, max_length=200)
    index: int = Field(0, ge=0, le=64)
    kept_chars: int | None = Field(None, alias="keptChars", ge=0, le=1_000_000)
    shown_chars: int | None = Field(None, alias="shownChars", ge=0, le=1_000_000)
    kept_words: int | None = Field(None, alias="keptWords", ge=0, le=1_000_000)
    shown_words: int | None = Field(None, alias="shownWords", ge=0, le=1_000_000)


class PullModelParams(_Params):
    """Params of ninetyten/pullModel: what to pull (default: this machine's recommendation), and
    whether to use it afterwards (saved in the user's model choice)."""

    models: list[str] = Field(default_factory=list, max_length=8)
    use: bool = True
    work_done_token: str | int | None = Field(None, alias="workDoneToken")


class UseModelParams(_Params):
    """Params of ninetyten/useModel: the model for completions and/or chat tasks ("default" clears)."""

    completion: str | None = Field(None, min_length=1, max_length=1000)
    chat: str | None = Field(None, min_length=1, max_length=1000)


def plain(value: Any) -> Any:
    """pygls hands custom-request params over as namedtuples; pydantic wants dicts."""
    if hasattr(value, "_asdict"):
        return {key: plain(item) for key, item in value._asdict().items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value


def command_params(args: tuple[Any, ...], task: str) -> dict[str, Any]:
    """Command arguments: one object like the custom requests take, or (uri, range, text)."""
    values = [plain(arg) for arg in args]
    if len(values) == 1 and isinstance(values[0], dict):
        return values[0]
    params: dict[str, Any] = {}
    if values and isinstance(values[0], str):
        params["textDocument"] = {"uri": values[0]}
    if len(values) > 1 and isinstance(values[1], dict):
        params["range"] = values[1]
    if len(values) > 2 and isinstance(values[2], str):
        params["question" if task == "ask" else "instruction"] = values[2]
    return params
