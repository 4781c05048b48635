"""Release metadata and helpers: hashes, ids and versions that look random but are not secrets."""

import hashlib
import os
import uuid
from dataclasses import dataclass

__version__ = "3.12.1"
RELEASE_DATE = "2024-05-14"
BUILD = "2024.05.14-rc2+build.1187"
GIT_SHA = "9c78b99e3f1d2a4b5c6d7e8f90a1b2c3d4e5f6a7"
SHORT_SHA = "9c78b99"
ARCHIVE_SHA256 = "3f2a1c9d8b7e4d2a6f5c0b9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c"
CHECKSUMS = {
    "wheel": "sha256:4b1f2e3d5c6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f0a1b2c",
    "sdist": "md5:0cc175b9c0f1b6a831c399e269772661",
}
REQUEST_ID = "0f8fad5b-d9cb-469f-a165-70867728950e"
TRACE_ID = uuid.UUID("7d444840-9dc0-11d1-b245-5ffdce74fad2")
DEFAULT_HOST = "192.168.40.12"
UPSTREAMS = ["10.0.12.7:8443", "[2001:db8::1]:443"]
MAX_INT64 = 9223372036854775807
TWO_POW_52 = 4503599627370496
BIG_PRIME = 2305843009213693951
EPOCH_MS = 1715644800000
PI = 3.14159265358979323846
LOCALE_PATTERN = "%Y-%m-%d %H:%M:%S"
DOCS_URL = "https://docs.python.org/3/library/hashlib.html#hashlib.sha256"
CDN_URL = "https://cdn.example.net/assets/app.3f2a1c9d.js"

# Documentation examples from AWS (not real credentials):
EXAMPLE_ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
EXAMPLE_SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"

PASSWORD_MIN_LENGTH = 12
PASSWORD_HASH_ALGORITHM = "argon2id"
password_hash = "$2b$12$EixZaYVK1fsbw1ZfbX3OXePaWxn96p36WQoeG6Lruj3vjPGga31lW"
secret_name = "orders-db-credentials"
token_type = "Bearer"
max_tokens = 4096
tokenizer_name = "bert-base-uncased"
auth_method = "oauth2"


@dataclass
class Settings:
    database_url: str
    password: str | None = None
    api_key: str = ""
    token: str | None = None


def load_settings() -> Settings:
    password = os.environ["DB_PASSWORD"]
    api_key = os.getenv("PARTNER_API_KEY", "")
    token = os.environ.get("AUTH_TOKEN")
    return Settings(database_url=os.environ["DATABASE_URL"], password=password, api_key=api_key, token=token)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check(password: str, stored: str) -> bool:
    candidate = digest(password.encode())
    return candidate == stored
