"""Fill-in-the-middle (FIM) token detection for a loaded llama.cpp model.

Sources, best first: the GGUF metadata keys, llama.cpp's own vocab detection (which
also recognises common FIM token texts), and finally the catalog's template strings
looked up in the vocab. No FIM tokens means prefix-only completion.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from local_models.catalog import CatalogEntry, FimFormat, FimTemplate

if TYPE_CHECKING:
    import llama_cpp

__all__ = [
    "METADATA_KEYS",
    "FimFormat",
    "FimTokens",
    "detect_fim_from_metadata",
    "detect_fim_tokens",
    "special_token_ids",
]

METADATA_KEYS: dict[str, str] = {
    "prefix": "tokenizer.ggml.fim_pre_token_id",
    "suffix": "tokenizer.ggml.fim_suf_token_id",
    "middle": "tokenizer.ggml.fim_mid_token_id",
    "pad": "tokenizer.ggml.fim_pad_token_id",
    "repo_name": "tokenizer.ggml.fim_rep_token_id",
    "file_sep": "tokenizer.ggml.fim_sep_token_id",
}

FimSource = Literal["metadata", "vocab", "catalog"]


@dataclass(frozen=True)
class FimTokens:
    prefix: int
    suffix: int
    middle: int
    pad: int | None = None
    repo_name: int | None = None
    file_sep: int | None = None
    source: FimSource = "metadata"

    def psm_prompt(self, prefix: Sequence[int], suffix: Sequence[int]) -> list[int]:
        """Prefix-suffix-middle order, which every FIM-trained model we know uses."""
        return [self.prefix, *prefix, self.suffix, *suffix, self.middle]

    def ids(self) -> frozenset[int]:
        values = (self.prefix, self.suffix, self.middle, self.pad, self.repo_name, self.file_sep)
        return frozenset(v for v in values if v is not None)


def _token_id(value: object) -> int | None:
    """Metadata values arrive as str from llama-cpp-python (int from gguf-py); -1 means unset."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        try:
            number = int(value.strip())
        except ValueError:
            return None
    else:
        return None
    # llama.cpp stores "absent" as -1 (LLAMA_TOKEN_NULL), which a u32 key shows as 2**32-1.
    return number if 0 <= number < 2**32 - 1 else None


def _build(found: Mapping[str, int | None], source: FimSource, n_vocab: int | None = None) -> FimTokens | None:
    def ok(v: int | None) -> int | None:
        return v if v is not None and (n_vocab is None or v < n_vocab) else None

    pre, suf, mid = ok(found.get("prefix")), ok(found.get("suffix")), ok(found.get("middle"))
    if pre is None or suf is None or mid is None:
        return None  # all three are needed for a FIM prompt; the others are optional
    return FimTokens(
        prefix=pre,
        suffix=suf,
        middle=mid,
        pad=ok(found.get("pad")),
        repo_name=ok(found.get("repo_name")),
        file_sep=ok(found.get("file_sep")),
        source=source,
    )


def detect_fim_from_metadata(metadata: Mapping[str, object], n_vocab: int | None = None) -> FimTokens | None:
    return _build({field: _token_id(metadata.get(key)) for field, key in METADATA_KEYS.items()}, "metadata", n_vocab)


def _vocab(llm: llama_cpp.Llama) -> object:
    import llama_cpp

    return llama_cpp.llama_model_get_vocab(llm.model)


def _detect_from_vocab_api(llm: llama_cpp.Llama, n_vocab: int) -> FimTokens | None:
    import llama_cpp

    vocab = _vocab(llm)
    getters = {
        "prefix": llama_cpp.llama_vocab_fim_pre,
        "suffix": llama_cpp.llama_vocab_fim_suf,
        "middle": llama_cpp.llama_vocab_fim_mid,
        "pad": llama_cpp.llama_vocab_fim_pad,
        "repo_name": llama_cpp.llama_vocab_fim_rep,
        "file_sep": llama_cpp.llama_vocab_fim_sep,
    }
    return _build({field: _token_id(int(get(vocab))) for field, get in getters.items()}, "vocab", n_vocab)


def _single_special_token(llm: llama_cpp.Llama, text: str | None) -> int | None:
    """The id of `text` if the vocab has it as one control/user-defined token."""
    import llama_cpp

    if not text:
        return None
    try:
        tokens = llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
    except RuntimeError:
        return None
    if len(tokens) != 1:
        return None
    attr = int(llama_cpp.llama_vocab_get_attr(_vocab(llm), tokens[0]))
    special = llama_cpp.LLAMA_TOKEN_ATTR_CONTROL | llama_cpp.LLAMA_TOKEN_ATTR_USER_DEFINED
    return tokens[0] if attr & special else None


def _detect_from_template(llm: llama_cpp.Llama, template: FimTemplate, n_vocab: int) -> FimTokens | None:
    found = {field: _single_special_token(llm, getattr(template, field)) for field in METADATA_KEYS}
    return _build(found, "catalog", n_vocab)


def detect_fim_tokens(llm: llama_cpp.Llama, catalog_entry: CatalogEntry | None) -> FimTokens | None:
    """FIM token ids for `llm`, or None for prefix-only completion."""
    n_vocab = llm.n_vocab()
    from_metadata = detect_fim_from_metadata(llm.metadata, n_vocab)
    if from_metadata is not None:
        return from_metadata
    from_vocab = _detect_from_vocab_api(llm, n_vocab)
    if from_vocab is not None:
        return from_vocab
    if catalog_entry is not None and catalog_entry.fim_template is not None:
        return _detect_from_template(llm, catalog_entry.fim_template, n_vocab)
    return None


def special_token_ids(llm: llama_cpp.Llama) -> frozenset[int]:
    """Ids of control and end-of-generation tokens: generation should stop on (or never emit) these.

    One pass over the vocab (~0.1 s for a 262k vocab); callers should cache per model.
    """
    import llama_cpp

    vocab = _vocab(llm)
    is_eog = llama_cpp.llama_vocab_is_eog
    is_control = llama_cpp.llama_vocab_is_control
    return frozenset(t for t in range(llm.n_vocab()) if is_eog(vocab, t) or is_control(vocab, t))
