"""The catalog of known GGUF code models (data in catalog.toml)."""

from __future__ import annotations

import functools
import re
import tomllib
from enum import StrEnum
from importlib import resources
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from local_models.errors import ModelError

EMBEDDED_MODEL_ID = "gemma-3-270m"
# The quantisation pulled when none is named: llama.cpp's own FIM presets are all Q8_0.
DEFAULT_QUANT = "q8_0"
# Licences `models recommend` may pick without the user asking for a model by name.
PERMISSIVE_LICENSES = frozenset({"Apache-2.0", "MIT"})

_REPO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_HEX = frozenset("0123456789abcdef")


def _is_hex(value: str, length: int) -> bool:
    return len(value) == length and all(c in _HEX for c in value)


class FimFormat(StrEnum):
    """How a model does fill-in-the-middle."""

    QWEN = "qwen"  # <|fim_prefix|>P<|fim_suffix|>S<|fim_middle|> (+ repo/file tokens)
    NONE = "none"  # no FIM: complete from the prefix only


class Role(StrEnum):
    """What a model is for."""

    FIM = "fim"  # inline completion (fill-in-the-middle)
    CHAT = "chat"  # explain, refactor, ask
    DRAFT = "draft"  # a small same-vocabulary model for speculative decoding


class FimTemplate(BaseModel):
    """The token *strings* of a FIM format; mapped to ids against a loaded vocab."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    prefix: str
    suffix: str
    middle: str
    pad: str | None = None
    repo_name: str | None = None
    file_sep: str | None = None


class Arch(BaseModel):
    """Just enough of the architecture to size the KV cache."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    layers: int = Field(gt=0)
    kv_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)

    def kv_bytes_per_token(self) -> int:
        """K and V, one f16 vector per layer and KV head (llama.cpp's default cache type)."""
        return 2 * self.layers * self.kv_heads * self.head_dim * 2


class ModelFile(BaseModel):
    """One downloadable file of a catalog model (one quantisation)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    quant: str
    file: str
    repo: str | None = None  # Hugging Face "owner/name"; None for files that come another way
    revision: str | None = None  # the commit the digest was published for
    size: int = Field(gt=0, description="bytes; approximate unless size_exact")
    size_exact: bool = True
    sha256: str | None = None

    @field_validator("file")
    @classmethod
    def _bare_gguf(cls, file_name: str) -> str:
        if not file_name.endswith(".gguf") or "/" in file_name or "\\" in file_name:
            raise ValueError(f"file must be a bare .gguf file name, got {file_name!r}")
        return file_name

    @field_validator("repo")
    @classmethod
    def _repo_id(cls, repo: str | None) -> str | None:
        if repo is not None and not _REPO_RE.fullmatch(repo):
            raise ValueError(f"repo must look like owner/name, got {repo!r}")
        return repo

    @field_validator("revision")
    @classmethod
    def _commit(cls, revision: str | None) -> str | None:
        if revision is not None and not _is_hex(revision, 40):
            raise ValueError("revision must be a full 40-hex-digit commit")
        return revision

    @field_validator("sha256")
    @classmethod
    def _hex_digest(cls, digest: str | None) -> str | None:
        if digest is not None and not _is_hex(digest, 64):
            raise ValueError("sha256 must be 64 lowercase hex digits")
        return digest

    @property
    def spec(self) -> str:
        """How `ninetyten models pull` names this file: REPO:FILE."""
        return f"{self.repo}:{self.file}" if self.repo else self.file

    def page_url(self) -> str | None:
        if self.repo is None:
            return None
        return f"https://huggingface.co/{self.repo}/blob/{self.revision or 'main'}/{self.file}"


class CatalogEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    name: str
    family: str
    params: str
    params_b: float = Field(gt=0, description="parameters, in billions")
    active_params_b: float | None = Field(default=None, gt=0, description="per token, for mixture-of-experts models")
    roles: tuple[Role, ...]
    files: tuple[ModelFile, ...]
    fim: FimFormat
    context_length: int = Field(gt=0)
    native_context_length: int | None = Field(default=None, gt=0)
    arch: Arch
    license: str
    rank: int = Field(ge=0)
    default_quant: str | None = None
    source: str | None = None  # where files without a repo come from
    notes: str | None = None
    fim_template: FimTemplate | None = None  # filled from [fim_templates] by the loader

    @model_validator(mode="after")
    def _consistent(self) -> CatalogEntry:
        if not self.roles:
            raise ValueError("at least one role is required")
        if not self.files:
            raise ValueError("at least one file is required")
        quants = [f.quant for f in self.files]
        if len(set(quants)) != len(quants):
            raise ValueError(f"duplicate quant in files: {quants}")
        if self.default_quant is not None and self.default_quant not in quants:
            raise ValueError(f"default_quant {self.default_quant!r} is not one of the files' quants {quants}")
        if any(f.repo is None for f in self.files) and self.source is None:
            raise ValueError("a file without a repo needs the entry's source")
        if self.fim is not FimFormat.NONE and self.fim_template is None:
            raise ValueError(f"fim template {self.fim.value!r} is not defined")
        return self

    @property
    def active_b(self) -> float:
        """Billions of parameters each token goes through (all of them unless MoE)."""
        return self.active_params_b or self.params_b

    @property
    def permissive(self) -> bool:
        return self.license in PERMISSIVE_LICENSES

    def has_role(self, role: Role | str) -> bool:
        return Role(role) in self.roles

    def default_file(self) -> ModelFile:
        for quant in (self.default_quant, DEFAULT_QUANT):
            found = self.file_for(quant) if quant else None
            if found is not None:
                return found
        return self.files[0]

    def preferred_files(self) -> list[ModelFile]:
        """The default file first, then the others in catalog order."""
        first = self.default_file()
        return [first, *(f for f in self.files if f is not first)]

    def file_for(self, quant: str) -> ModelFile | None:
        wanted = quant.strip().lower()
        return next((f for f in self.files if f.quant == wanted), None)

    def file_names(self) -> list[str]:
        return [f.file for f in self.preferred_files()]

    def file_named(self, file_name: str) -> ModelFile | None:
        return next((f for f in self.files if f.file == file_name), None)

    def expected_sha256(self, file_name: str) -> str | None:
        found = self.file_named(file_name)
        return found.sha256 if found else None


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
    seen: dict[tuple[str | None, str], str] = {}
    for entry in entries.values():
        for model_file in entry.files:
            key = (model_file.repo, model_file.file)
            if key in seen:
                raise ModelError(
                    f"Catalog file {model_file.spec} is listed by both {seen[key]!r} and {entry.id!r}.",
                    "Reinstall ninetyten.",
                )
            seen[key] = entry.id
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


def find_catalog_file(repo: str, file_name: str) -> tuple[CatalogEntry, ModelFile] | None:
    """The catalog entry and file for a Hugging Face repo and file name, if the catalog has it."""
    for entry in _loaded()[0].values():
        for model_file in entry.files:
            if model_file.repo is not None and model_file.repo.lower() == repo.lower() and model_file.file == file_name:
                return entry, model_file
    return None
