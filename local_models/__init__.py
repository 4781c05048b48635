"""Local model files: the catalog, locating/assembling/verifying GGUFs, FIM detection,
and the tiny test-model builder.

Importing this package is cheap: llama_cpp, gguf and rich are imported only by the
functions that need them.
"""

from local_models.catalog import CatalogEntry, FimFormat, get_entry, load_catalog
from local_models.embedded import embedded_model_path
from local_models.errors import ModelError
from local_models.fim import FimTokens, detect_fim_from_metadata, detect_fim_tokens, special_token_ids
from local_models.paths import models_dir, ninetyten_home
from local_models.resolve import ResolvedModel, resolve_model
from local_models.tiny import build_tiny_model
from local_models.verify import VerifyResult, sha256_file, verify_model

__all__ = [
    "CatalogEntry",
    "FimFormat",
    "FimTokens",
    "ModelError",
    "ResolvedModel",
    "VerifyResult",
    "build_tiny_model",
    "detect_fim_from_metadata",
    "detect_fim_tokens",
    "embedded_model_path",
    "get_entry",
    "load_catalog",
    "models_dir",
    "ninetyten_home",
    "resolve_model",
    "sha256_file",
    "special_token_ids",
    "verify_model",
]
