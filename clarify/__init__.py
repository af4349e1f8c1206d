"""Ferry clarify: bias metrics, SHAP explanations, reports."""
