"""Server settings: CLI flags and the client's initializationOptions, validated at the edge."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class CompletionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_tokens: int = Field(48, ge=1, le=32_768, description="Most tokens one completion may generate.")
    max_lines: int = Field(8, ge=1, le=200, description="Most lines in one multi-line completion.")
    time_limit_ms: int = Field(2000, ge=10, le=600_000, description="Time box for one generation.")
    prefix_tokens: int = Field(1024, ge=16, description="Token budget for text before the cursor.")
    suffix_tokens: int = Field(128, ge=0, description="Token budget for text after the cursor.")
    extra_tokens: int = Field(
        512, ge=0, description="Token budget for context from other files (repository, recent edits, forwarded)."
    )
    extra_files: int = Field(
        4, ge=0, le=64, description="Most recently edited ranges of other files offered as context (0: none)."
    )
    repository_context: bool = Field(
        True,
        description="Index the workspace folders in the background and offer definitions of what the code "
        "at the cursor uses, the enclosing class's members and similar code as context.",
    )
    debounce_min_ms: float = Field(0.0, ge=0, le=2000, description="Shortest wait before an automatic request runs.")
    debounce_max_ms: float = Field(
        120.0,
        ge=0,
        le=2000,
        description="Longest wait: automatic requests wait about as long as the user's recent keystroke gaps.",
    )
    max_document_chars: int = Field(
        512_000, ge=1_000, description="Documents larger than this are considered only around the cursor."
    )
    window_lines: int = Field(1000, ge=50, le=100_000, description="Lines on each side of the cursor in that case.")
    max_line_chars: int = Field(
        4_000, ge=100, description="Longer lines (minified code) are cut to this many characters around the cursor."
    )
    cache_size: int = Field(64, ge=0, le=10_000, description="Suggestions kept for re-requests and typing through.")
    speculative: bool = Field(True, description="Prepare the next suggestion for after the current one is accepted.")
    alternatives: int = Field(
        3,
        ge=1,
        le=8,
        description="Most suggestions in one answer to an explicit request when the model is unsure "
        "(the editor cycles through them); 1: only the best.",
    )
    quiet: bool = Field(
        True,
        description="Stay quiet: do not show a suggestion made while typing whose mean token log-probability "
        "is below quiet_below (the eval shows such suggestions are usually wrong); false shows everything.",
    )
    quiet_below: float = Field(
        -0.6,
        le=0,
        description="The mean token log-probability under which a suggestion made while typing is "
        "held back (calibrated on `ninetyten eval completion`).",
    )
    unsure_logprob: float = Field(
        -0.7,
        le=0,
        description="A token chosen with a log-probability below this (p < 0.5) makes the model "
        "'unsure' there: alternatives branch at the first such token.",
    )
    warm: bool = Field(
        True, description="Read the prompt at the cursor into the model's cache when a file is opened or focused."
    )
    classic: Literal["auto", "always", "never"] = Field(
        "auto",
        description="Answer textDocument/completion: 'auto' only for clients without inline completion.",
    )


class AssistConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_tokens: int = Field(512, ge=1, le=32_768, description="Most tokens for an explain/refactor/ask answer.")
    prompt_lookup: bool = Field(
        False,
        description="Speculative decoding from n-grams of the prompt and the answer so far (refactors and "
        "explanations repeat their input): the answer stays exactly the greedy one.",
    )
    draft_tokens: int = Field(6, ge=1, le=16, description="Most tokens drafted per step of speculative decoding.")


class ServerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(None, description="Path to a .gguf file or a catalog id; default: the embedded model.")
    chat_model: str | None = Field(
        None,
        description="A second local model for explain, refactor, ask and commit messages (an instruct model); "
        "default: the policy's tiers.local.chat_model, else `model` serves them too.",
    )
    draft_model: str | None = Field(
        None, description="A small model with the chat model's vocabulary that drafts tokens for its answers."
    )
    n_ctx: int = Field(4096, ge=256, le=262_144, description="llama.cpp context window in tokens.")
    threads: int | None = Field(
        None, ge=1, le=256, description="CPU threads for llama.cpp (default: all cores, at most 8)."
    )
    gpu_layers: int = Field(
        -1,
        ge=-1,
        le=100_000,
        description="Model layers to offload to the GPU when llama.cpp was built with GPU support: -1 all, 0 none.",
    )
    load_timeout_s: float = Field(120.0, gt=0, description="How long a request waits for the model to finish loading.")
    engine: Literal["shared", "in-process"] = Field(
        "shared",
        description="'shared': the user's engine process (one per model, shared by every window, the CLI and the "
        "git hook); 'in-process': llama.cpp inside this process (a native crash takes it down).",
    )
    completion: CompletionConfig = Field(default_factory=CompletionConfig)
    assist: AssistConfig = Field(default_factory=AssistConfig)

    def merged(self, overrides: dict[str, Any] | None) -> "ServerConfig":
        """These settings updated with a (possibly partial) dict, validated as a whole."""
        if not overrides:
            return self
        data = self.model_dump()
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
        return ServerConfig.model_validate(data)


def describe_validation_error(error: ValidationError) -> str:
    """One line per problem, naming the setting: readable in an editor notification."""
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "(root)"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)
