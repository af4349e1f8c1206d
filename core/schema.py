"""The one pydantic base of every deploy-file section: unknown keys are errors."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """A schema section that rejects unknown keys (so a typo is an error that names the field)."""

    model_config = ConfigDict(extra="forbid")
