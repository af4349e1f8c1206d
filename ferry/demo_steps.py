"""The demo's pipeline steps (`ferry demo` copies this file beside ferry.yaml as credit_steps.py).

`encode` turns raw applicants (categorical strings) into the model's rows; `Decide` turns the model's
probabilities into a decision. They need only numpy and pandas: the file stands alone in the demo folder.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

EMPLOYMENT = ["salaried", "self_employed", "unemployed", "student"]
HOUSING = ["own", "rent", "mortgage"]
NUMERIC = ["age", "income", "debt_ratio", "credit_history_months", "num_open_accounts", "loan_amount"]
MODEL_FEATURES = NUMERIC + ["employment_code", "housing_code"]
RAW_FIELDS = NUMERIC + ["employment", "housing"]


def encode(table: pd.DataFrame) -> pd.DataFrame:
    """Raw applicants -> the model's features by name, at full precision: the numeric fields, and each
    categorical as its index in the known categories (unknown -> -1). Other fields are left out."""
    missing = [f for f in RAW_FIELDS if f not in table.columns]
    if missing:
        raise ValueError(f"applicants need the fields {RAW_FIELDS}; missing {missing}")
    try:
        out = table[NUMERIC].astype(np.float64).reset_index(drop=True)
    except (TypeError, ValueError) as err:
        raise ValueError(f"the numeric fields {NUMERIC} must be numbers: {err}") from None
    out["employment_code"] = pd.Categorical(table["employment"], categories=EMPLOYMENT).codes.astype(np.float64)
    out["housing_code"] = pd.Categorical(table["housing"], categories=HOUSING).codes.astype(np.float64)
    return out


class Decide:
    """The model's outputs plus a decision: approve at or above `approve_at` (probability of class 1),
    decline below `review_at`, review in between."""

    def __init__(self, approve_at: float = 0.6, review_at: float = 0.4):
        if not 0 <= review_at <= approve_at <= 1:
            raise ValueError("need 0 <= review_at <= approve_at <= 1")
        self.approve_at, self.review_at = approve_at, review_at

    def __call__(self, outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        p = outputs["probabilities"][:, 1]
        decision = np.where(p >= self.approve_at, "approve", np.where(p < self.review_at, "decline", "review"))
        return {**outputs, "decision": decision.astype(object)}
