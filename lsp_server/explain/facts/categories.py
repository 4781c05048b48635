"""What kind of file a path is, for a change's facts: test, docs, CI, build, config, a
dependency manifest, a lock file, source, or other.

Decided from the path alone (names and directories that ecosystems agree on), so a commit
that only touches `tests/` is "tests-only" whatever its content.
"""

from __future__ import annotations

import re
from typing import Literal

from lsp_server.context.languages import language_for_path
from lsp_server.explain.diff.summary_rules import DEFAULT_RULES

Category = Literal["test", "docs", "ci", "build", "config", "dependencies", "lockfile", "source", "other"]

_TEST_DIRS = frozenset({"test", "tests", "__tests__", "spec", "specs", "testing", "testdata", "test_data", "e2e"})
_TEST_FILE = re.compile(
    r"(?:^test_.*\.py|.*_test\.py|^conftest\.py|.*_test\.go|.*\.(?:test|spec)\.[cm]?[jt]sx?|.*Tests?\.java"
    r"|.*_spec\.rb|.*Tests?\.kt|.*_tests?\.rs|.*Test\.php)\Z"
)
_DOC_DIRS = frozenset({"docs", "doc", "documentation", "man"})
_DOC_FILE = re.compile(
    r"(?i:.*\.(?:md|markdown|rst|adoc|asciidoc|txt|org|rdoc)|readme(?:\..*)?|changelog(?:\..*)?|changes(?:\..*)?"
    r"|news(?:\..*)?|authors(?:\..*)?|contributing(?:\..*)?|license(?:\..*)?|licence(?:\..*)?|copying(?:\..*)?"
    r"|notice(?:\..*)?|code_of_conduct(?:\..*)?|security(?:\..*)?)\Z"
)
_CI = re.compile(
    r"(?:\.github/workflows/.*|\.github/actions/.*|\.gitlab-ci\.yml|\.gitlab/.*|\.circleci/.*|\.ci/.*"
    r"|azure-pipelines\.ya?ml|Jenkinsfile|\.travis\.yml|\.buildkite/.*|\.woodpecker.*|\.drone\.yml"
    r"|\.pre-commit-config\.yaml|\.github/dependabot\.yml|appveyor\.yml|bitbucket-pipelines\.yml)\Z"
)
_BUILD_FILE = re.compile(
    r"(?:Makefile|GNUmakefile|.*\.mk|CMakeLists\.txt|.*\.cmake|meson\.build|BUILD(?:\.bazel)?|WORKSPACE"
    r"|.*\.bzl|Dockerfile.*|.*\.dockerfile|docker-compose.*\.ya?ml|compose\.ya?ml|Containerfile|justfile"
    r"|Taskfile\.ya?ml|build\.rs|MANIFEST\.in|.*\.spec)\Z"
)
_MANIFEST = re.compile(
    r"(?:pyproject\.toml|setup\.py|setup\.cfg|requirements.*\.(?:txt|in)|constraints.*\.txt|Pipfile"
    r"|environment\.ya?ml|package\.json|Cargo\.toml|go\.mod|go\.work|pom\.xml|build\.gradle(?:\.kts)?"
    r"|settings\.gradle(?:\.kts)?|Gemfile|.*\.gemspec|composer\.json|mix\.exs|pubspec\.yaml|Package\.swift"
    r"|.*\.csproj|packages\.config|deno\.json)\Z"
)
_CONFIG_FILE = re.compile(
    r"(?i:.*\.(?:toml|ya?ml|ini|cfg|conf|json|jsonc|json5|properties|editorconfig|env\.example|plist|xml)"
    r"|\.[\w.-]*rc(?:\.\w+)?|\.gitignore|\.gitattributes|\.dockerignore|\.npmignore|\.editorconfig"
    r"|\.env\.[\w.-]+|tsconfig.*\.json|\.nvmrc|\.python-version|\.tool-versions)\Z"
)
_SOURCE_EXT = re.compile(
    r".*\.(?:py|pyi|js|jsx|mjs|cjs|ts|tsx|mts|cts|go|rs|java|kt|kts|scala|c|h|cc|cpp|cxx|hh|hpp|hxx|cs|rb|php"
    r"|swift|m|mm|lua|sh|bash|zsh|ps1|pl|pm|r|jl|ex|exs|erl|hs|ml|mli|fs|fsx|dart|vue|svelte|sql|html|css|scss"
    r"|sass|less|vim|el|clj|cljs|zig|nim|sol)\Z",
    re.I,
)


def category(path: str) -> Category:
    """The category of one path ('/'-separated, relative to the repository)."""
    parts = path.split("/")
    name = parts[-1]
    dirs = parts[:-1]
    if DEFAULT_RULES.classify_path(path) == "lock file":
        return "lockfile"
    if _CI.match(path):
        return "ci"
    if _MANIFEST.match(name):
        return "dependencies"
    if any(d.lower() in _TEST_DIRS for d in dirs) or _TEST_FILE.match(name):
        return "test"
    if _DOC_FILE.match(name) and not name.lower().startswith(("requirements", "constraints", "cmakelists")):
        return "docs"
    if any(d.lower() in _DOC_DIRS for d in dirs) and not _SOURCE_EXT.match(name):
        return "docs"
    if _BUILD_FILE.match(name):
        return "build"
    if language_for_path(name) is not None or _SOURCE_EXT.match(name):
        return "source"
    if _CONFIG_FILE.match(name):
        return "config"
    return "other"
