"""Local model files: the catalog, pulling from Hugging Face, locating/assembling/verifying
GGUFs, recommending models for a machine, FIM detection, and the tiny test-model builder.

Importing this package is cheap: llama_cpp, gguf, huggingface_hub and rich are imported only
by the functions that need them.
"""

from local_models.catalog import CatalogEntry, FimFormat, ModelFile, Role, canonical_id, get_entry, load_catalog
from local_models.embedded import embedded_model_path
from local_models.errors import ModelError
from local_models.fim import FimTokens, detect_fim_from_metadata, detect_fim_tokens, special_token_ids
from local_models.machine import Machine, detect_machine, parse_machine
from local_models.paths import hub_cache_dir, models_dir, ninetyten_home
from local_models.pull import PullResult, PullTarget, parse_target, pull
from local_models.pulled import PulledFile
from local_models.recommend import Recommendation, recommend
from local_models.resolve import ResolvedModel, resolve_model
from local_models.tiny import build_tiny_model
from local_models.verify import VerifyResult, sha256_file, verify_model

__all__ = [
    "CatalogEntry",
    "FimFormat",
    "FimTokens",
    "Machine",
    "ModelError",
    "ModelFile",
    "PullResult",
    "PullTarget",
    "PulledFile",
    "Recommendation",
    "ResolvedModel",
    "Role",
    "VerifyResult",
    "build_tiny_model",
    "canonical_id",
    "detect_fim_from_metadata",
    "detect_fim_tokens",
    "detect_machine",
    "embedded_model_path",
    "get_entry",
    "hub_cache_dir",
    "load_catalog",
    "models_dir",
    "ninetyten_home",
    "parse_machine",
    "parse_target",
    "pull",
    "recommend",
    "resolve_model",
    "sha256_file",
    "special_token_ids",
    "verify_model",
]
