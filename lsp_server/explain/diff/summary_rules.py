"""Files a diff only summarizes (lock files, generated code): their text is dropped as soon as it is known."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

_LOCK_FILES = (
    "package-lock.json",
    "npm-shrinkwrap.json",
    "yarn.lock",
    "pnpm-lock.yaml",
    "bun.lock",
    "bun.lockb",
    "deno.lock",
    "poetry.lock",
    "Pipfile.lock",
    "uv.lock",
    "pdm.lock",
    "pylock.toml",
    "pylock.*.toml",
    "conda-lock.yml",
    "Cargo.lock",
    "go.sum",
    "go.work.sum",
    "composer.lock",
    "Gemfile.lock",
    "mix.lock",
    "pubspec.lock",
    "Podfile.lock",
    "Package.resolved",
    "packages.lock.json",
    "gradle.lockfile",
    "flake.lock",
    ".terraform.lock.hcl",
    "Berksfile.lock",
    "renv.lock",
)
_GENERATED_FILES = (
    "*.min.js",
    "*.min.mjs",
    "*.min.css",
    "*.map",
    "*_pb2.py",
    "*_pb2.pyi",
    "*_pb2_grpc.py",
    "*.pb.go",
    "*.pb.cc",
    "*.pb.h",
    "*.pb.swift",
)
# Markers generators write at the top of their output. "DO NOT EDIT" is case-sensitive on
# purpose: "do not edit this list without ..." in hand-written files is not a generator.
_GENERATED_MARKER = r"DO NOT EDIT|@generated\b|(?i:\bauto-?generated\b|\bautomatically generated\b)"


def glob_regex(globs: Iterable[str]) -> re.Pattern[str]:
    parts = (re.escape(g).replace(r"\*", "[^/]*") for g in globs)
    return re.compile("(?:" + "|".join(parts) + r")\Z")


@dataclass(frozen=True)
class SummaryRules:
    """Which files are summarized by name instead of being sent to a model. Configurable per call."""

    lock_files: tuple[str, ...] = _LOCK_FILES  # basename globs (`*` only)
    generated_files: tuple[str, ...] = _GENERATED_FILES  # basename globs
    generated_dirs: frozenset[str] = frozenset({"dist", "build"})  # any path component
    vendored_dirs: frozenset[str] = frozenset(
        {"vendor", "third_party", "third-party", "node_modules", "bower_components"}
    )
    generated_marker: str = _GENERATED_MARKER  # searched in a file's first `marker_lines` new lines
    marker_lines: int = 10
    max_changed_lines: int | None = 5000  # more changed lines than this: "too large"

    @cached_property
    def _lock_re(self) -> re.Pattern[str]:
        return glob_regex(self.lock_files)

    @cached_property
    def _generated_re(self) -> re.Pattern[str]:
        return glob_regex(self.generated_files)

    @cached_property
    def marker_re(self) -> re.Pattern[str]:
        return re.compile(self.generated_marker)

    def classify_path(self, path: str) -> str | None:
        """'lock file', 'vendored' or 'generated' when the path alone decides, else None."""
        *dirs, name = path.split("/")
        if self._lock_re.match(name):
            return "lock file"
        if any(d in self.vendored_dirs for d in dirs):
            return "vendored"
        if self._generated_re.match(name) or any(d in self.generated_dirs for d in dirs):
            return "generated"
        return None


DEFAULT_RULES = SummaryRules()
