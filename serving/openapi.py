"""The OpenAPI description of every HTTP route (serving/openapi.yaml), served as GET /openapi.json."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import orjson
import yaml

SOURCE = Path(__file__).with_name("openapi.yaml")


@lru_cache(maxsize=1)
def document() -> bytes:
    """The document as JSON bytes (read once per process)."""
    return orjson.dumps(yaml.safe_load(SOURCE.read_text()))
