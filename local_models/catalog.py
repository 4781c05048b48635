"""The catalog of known GGUF code models (data in catalog.toml)."""

from __future__ import annotations

import functools
import tomllib
from enum import StrEnum
from importlib import resources
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from local_models.errors import ModelError

# Order in which we look for a catalog model's file: smaller quant first because it is
# the one we recommend downloading.
QUANT_PREFERENCE: tuple[str, ...] = ("q4_k_m", "q8_0")

EMBEDDED_MODEL_ID = "gemma-3-270m"


class FimFormat(StrEnum):
    """How a model does fill-in-the-middle."""

    QWEN = "qwen"  # <|fim_prefix|>P<|fim_suffix|>S<|fim_middle|> (+ repo/file tokens)
    NONE = "none"  # no FIM: complete from the prefix only


class FimTemplate(BaseModel):
    """The token *strings* of a FIM format; mapped to ids against a loaded vocab."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    prefix: str
    suffix: str
    middle: str
    pad: str | None = None
    repo_name: str | None = None
    file_sep: str | None = None


class CatalogEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    name: str
    family: str
    params: str
    files: dict[str, str] = Field(description="quant name -> file name, e.g. q4_k_m -> X-Q4_K_M.gguf")
    fim: FimFormat
    context_length: int = Field(gt=0)
    native_context_length: int | None = Field(default=None, gt=0)
    hf_repo: str | None = None
    source: str | None = None  # where the file comes from when not Hugging Face
    sha256: dict[str, str] = Field(default_factory=dict, description="quant name -> hex digest")
    notes: str | None = None
    fim_template: FimTemplate | None = None  # filled from [fim_templates] by the loader

    @field_validator("files")
    @classmethod
    def _files_not_empty(cls, files: dict[str, str]) -> dict[str, str]:
        if not files:
            raise ValueError("at least one file is required")
        for quant, file_name in files.items():
            if not file_name.endswith(".gguf") or "/" in file_name or "\\" in file_name:
                raise ValueError(f"files.{quant} must be a bare .gguf file name, got {file_name!r}")
        return files

    @field_validator("sha256")
    @classmethod
    def _hex_digests(cls, digests: dict[str, str]) -> dict[str, str]:
        for quant, digest in digests.items():
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ValueError(f"sha256.{quant} must be 64 lowercase hex digits")
        return digests

    @model_validator(mode="after")
    def _consistent(self) -> CatalogEntry:
        unknown = set(self.sha256) - set(self.files)
        if unknown:
            raise ValueError(f"sha256 given for unknown quant(s): {sorted(unknown)}")
        if self.hf_repo is None and self.source is None:
            raise ValueError("either hf_repo or source is required")
        if self.fim is not FimFormat.NONE and self.fim_template is None:
            raise ValueError(f"fim template {self.fim.value!r} is not defined")
        return self

    def preferred_files(self) -> list[str]:
        """File names to look for, most preferred first."""
        ordered = [self.files[q] for q in QUANT_PREFERENCE if q in self.files]
        return ordered + [f for q, f in self.files.items() if q not in QUANT_PREFERENCE]

    def expected_sha256(self, file_name: str) -> str | None:
        for quant, name in self.files.items():
            if name == file_name:
                return self.sha256.get(quant)
        return None

    def download_url(self, file_name: str) -> str | None:
        return f"https://huggingface.co/{self.hf_repo}/blob/main/{file_name}" if self.hf_repo else None


class _CatalogFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    aliases: dict[str, str] = Field(default_factory=dict)
    fim_templates: dict[str, FimTemplate] = Field(default_factory=dict)
    models: dict[str, dict[str, Any]]


def _read_catalog_text() -> str:
    return resources.files("local_models").joinpath("catalog.toml").read_text(encoding="utf-8")


def _parse(text: str) -> tuple[dict[str, CatalogEntry], dict[str, str]]:
    try:
        raw = _CatalogFile.model_validate(tomllib.loads(text))
        entries: dict[str, CatalogEntry] = {}
        for model_id, fields in raw.models.items():
            template = raw.fim_templates.get(str(fields.get("fim", "none")))
            entries[model_id] = CatalogEntry.model_validate({**fields, "id": model_id, "fim_template": template})
    except (tomllib.TOMLDecodeError, ValidationError) as exc:
        # A broken catalog is a packaging bug, not a user mistake.
        raise ModelError(
            f"The built-in model catalog is invalid: {exc}",
            "Reinstall ninetyten (`pip install --force-reinstall ninetyten`).",
        ) from exc
    for alias, target in raw.aliases.items():
        if target not in entries:
            raise ModelError(f"Catalog alias {alias!r} points to unknown model {target!r}.", "Reinstall ninetyten.")
    return entries, dict(raw.aliases)


@functools.cache
def _loaded() -> tuple[dict[str, CatalogEntry], dict[str, str]]:
    return _parse(_read_catalog_text())


def load_catalog() -> dict[str, CatalogEntry]:
    """All known models by id (a fresh dict; the entries themselves are immutable)."""
    return dict(_loaded()[0])


def catalog_aliases() -> dict[str, str]:
    return dict(_loaded()[1])


def canonical_id(name: str) -> str | None:
    """The catalog id for an id or alias (case-insensitive), or None if unknown."""
    entries, aliases = _loaded()
    key = name.strip().lower()
    key = aliases.get(key, key)
    return key if key in entries else None


def get_entry(model_id: str) -> CatalogEntry:
    resolved = canonical_id(model_id)
    if resolved is None:
        known = ", ".join(sorted(_loaded()[0]) + sorted(_loaded()[1]))
        raise ModelError(
            f"Unknown model {model_id!r}. Known catalog ids: {known}.",
            "Use one of those, or pass --model PATH to a .gguf file.",
        )
    return _loaded()[0][resolved]
