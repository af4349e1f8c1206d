"""Protocol-neutral request and response types shared by the HTTP and gRPC adapters and the router."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from core.errors import InferenceError


@dataclass
class Payload:
    """What the model receives: a row matrix (SageMaker CSV/JSON/NPY) or named tensors (V2, JSON inputs)."""

    matrix: np.ndarray | None = None
    named: dict[str, np.ndarray] | None = None
    strict_dtype: bool = False  # V2 clients declare datatypes; SageMaker bodies are cast to the model's


@dataclass
class RoutedRequest:
    """One inference through an endpoint's router."""

    payload: Payload
    output_names: list[str] | None = None
    target_variant: str | None = None
    inference_id: str | None = None
    content_type: str | None = None  # the client's body, kept for data capture
    body: bytes | None = None


@dataclass
class RoutedResponse:
    variant: str
    outputs: dict[str, np.ndarray] = field(default_factory=dict)
    error: InferenceError | None = None
    batch_size: int = 1
    model_seconds: float = 0.0
