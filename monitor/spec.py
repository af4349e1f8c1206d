"""`monitoring_schedules` entries of ferry.yaml: one typed model per schedule, clear errors."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from core.schema import Strict

MonitorType = Literal["data_quality", "model_quality", "bias", "attribution"]
ProblemType = Literal["Regression", "BinaryClassification", "MulticlassClassification"]


class BiasSpec(Strict):
    """What clarify.bias_report needs, with column names of the window (captured rows joined to ground truth)."""

    label: str = Field("groundTruth", description="label column; ground truth arrives as 'groundTruth'")
    positive_label_values: list[Any] = Field(default_factory=lambda: [1])
    facets: list[str | dict[str, Any]] = Field(min_length=1, description="facet columns or {name, values|threshold}")
    predicted_label: str | None = Field("prediction", description="predicted label column")
    probability: str | None = Field(None, description="or a probability column, thresholded")
    probability_threshold: float = 0.5
    group: str | None = Field(None, description="group variable for CDDL/CDDPL")


class MonitoringScheduleSpec(Strict):
    """A monitor that runs on an endpoint's captured data every interval (or on a cron) over a window."""

    name: str = Field(pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$", max_length=63)
    endpoint: str
    monitor_type: MonitorType = "data_quality"
    interval_s: float = Field(3600.0, gt=0, description="run period when no cron is given")
    cron: str | None = Field(None, description="5-field cron expression (UTC); overrides interval_s")
    window_start_offset_s: float = Field(3600.0, gt=0, description="window starts this long before the run")
    window_end_offset_s: float = Field(0.0, ge=0, description="window ends this long before the run")
    baseline: str = Field(description="baseline folder: statistics.json + constraints.json, or analysis.json")
    capture: str = Field("./capture", description="capture root (the endpoint's data_capture.destination folder)")
    output: str = Field("./monitoring", description="executions go to <output>/<endpoint>/<name>/<timestamp>/")
    input_columns: list[str] | None = Field(None, description="names of CSV payload columns (default: baseline's)")
    output_columns: list[str] | None = Field(None, description="names of output columns (default: prediction)")
    min_window_rows: int = Field(50, ge=1, description="below this, drift checks are skipped (no false alarms)")
    ground_truth: str | None = Field(None, description="folder of ground-truth JSONL (model_quality, bias)")
    problem_type: ProblemType = "BinaryClassification"
    inference_attribute: str = "prediction"
    probability_attribute: str | None = None
    probability_threshold: float | None = Field(None, description="label = probability > threshold when set")
    positive_label: str | int | float = 1
    bias: BiasSpec | None = None
    model: str | None = Field(None, description="ONNX model explained by the attribution monitor")
    features: list[str] | None = Field(None, description="model feature columns, in the model's order")
    ndcg_threshold: float = Field(0.90, gt=0, le=1)
    explain_max_rows: int = Field(500, ge=1)

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        if v is not None:
            from croniter import croniter
            if not croniter.is_valid(v):
                raise ValueError(f"{v!r} is not a valid cron expression")
        return v

    @model_validator(mode="after")
    def _needs(self) -> "MonitoringScheduleSpec":
        if self.window_end_offset_s >= self.window_start_offset_s:
            raise ValueError("window_end_offset_s must be smaller than window_start_offset_s")
        if self.monitor_type in ("model_quality", "bias") and not self.ground_truth:
            raise ValueError(f"ground_truth: a {self.monitor_type} monitor needs a ground-truth folder")
        if self.monitor_type == "bias" and self.bias is None:
            raise ValueError("bias: a bias monitor needs its label and facets")
        if self.monitor_type == "attribution" and not (self.model and self.features):
            raise ValueError("model, features: an attribution monitor needs the model and its feature columns")
        return self
