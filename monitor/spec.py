"""`monitoring_schedules` entries of ferry.yaml: one typed model per monitor type, tagged by `monitor_type`.

``SCHEDULE_TYPES`` is the one table of monitor types: each class holds its own fields (a field of another
type is an error that names it), the violation check types it reports (monitor.metrics), whether its window
is joined to ground truth, ``job``, the monitoring job it runs on a window (monitor.runner), and
``write_baseline``, the baseline it suggests from a dataset (`ferry baseline --type`).
``MonitoringScheduleSpec`` validates a dict into the right class, as a field type of the deploy file or
called directly: ``MonitoringScheduleSpec(**fields)``. An entry without `monitor_type` is data_quality.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Union

from pydantic import Discriminator, Field, Tag, TypeAdapter, field_validator, model_validator

from core.schema import Strict

if TYPE_CHECKING:
    import pandas as pd

    from monitor.jobs import JobResult

ProblemType = Literal["Regression", "BinaryClassification", "MulticlassClassification"]


class FacetSpec(Strict):
    """A facet of a deploy file or a request: its column, and how it selects d (clarify.Facet's fields)."""

    name: str
    values: list[Any] | None = Field(None, description="d = rows with one of these values")
    threshold: int | float | None = Field(None, description="d = rows with a value above it (kept as written)")

    @model_validator(mode="after")
    def _one_rule(self):
        if self.values is not None and self.threshold is not None:
            raise ValueError(f"facet {self.name!r}: give values or a threshold, not both")
        return self

    def facet(self):
        """The clarify.Facet it describes."""
        from clarify import Facet

        return Facet(self.name, self.values, self.threshold)


def facets(items: list[str | FacetSpec]) -> list:
    """clarify's facets for the given column names and FacetSpecs."""
    return [f if isinstance(f, str) else f.facet() for f in items]


class BiasSpec(Strict):
    """What clarify.bias_report needs, with column names of the window (captured rows joined to ground truth)."""

    label: str = Field("groundTruth", description="label column; ground truth arrives as 'groundTruth'")
    positive_label_values: list[Any] = Field(default_factory=lambda: [1])
    facets: list[str | FacetSpec] = Field(min_length=1, description="facet columns or {name, values|threshold}")
    predicted_label: str | None = Field("prediction", description="predicted label column")
    probability: str | None = Field(None, description="or a probability column, thresholded")
    probability_threshold: float = 0.5
    group: str | None = Field(None, description="group variable for CDDL/CDDPL")


@dataclass(frozen=True)
class BaselineOptions:
    """What `ferry baseline` may say about a dataset; each monitor type's baseline reads the options it needs."""

    exclude: tuple[str, ...] = ()  # data quality: columns left out
    problem_type: ProblemType = "BinaryClassification"  # model quality
    label: str = "label"  # model quality and bias: the ground-truth label column
    prediction: str = "prediction"
    probability: str | None = None
    probability_threshold: float | None = None
    positive_label: Any = 1
    facets: tuple = ()  # bias: column names or clarify.Facet
    model: str | None = None  # attribution: the ONNX model explained
    features: tuple[str, ...] = ()  # attribution: its feature columns


class ScheduleBase(Strict):
    """A monitor that runs on an endpoint's captured data every interval (or on a cron) over a window."""

    check_types: ClassVar[tuple[str, ...]] = ()
    needs_ground_truth: ClassVar[bool] = False
    path_fields: ClassVar[tuple[str, ...]] = ("baseline", "capture", "output")

    name: str = Field(pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$", max_length=63)
    endpoint: str
    interval_s: float = Field(3600.0, gt=0, description="run period when no cron is given")
    cron: str | None = Field(None, description="5-field cron expression (UTC); overrides interval_s")
    window_start_offset_s: float = Field(3600.0, gt=0, description="window starts this long before the run")
    window_end_offset_s: float = Field(0.0, ge=0, description="window ends this long before the run")
    baseline: str = Field(description="baseline folder: statistics.json + constraints.json, or analysis.json")
    capture: str = Field("./capture", description="capture root (the endpoint's data_capture.destination folder)")
    output: str = Field("./monitoring", description="executions go to <output>/<endpoint>/<name>/<timestamp>/")
    input_columns: list[str] | None = Field(None, description="names of CSV payload columns")
    output_columns: list[str] | None = Field(None, description="names of output columns (default: prediction)")

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        if v is not None:
            from croniter import croniter
            if not croniter.is_valid(v):
                raise ValueError(f"{v!r} is not a valid cron expression")
        return v

    @model_validator(mode="after")
    def _window(self) -> "ScheduleBase":
        if self.window_end_offset_s >= self.window_start_offset_s:
            raise ValueError("window_end_offset_s must be smaller than window_start_offset_s")
        return self

    def payload_columns(self) -> list[str] | None:
        """Names of the captured CSV input columns: input_columns when given."""
        return self.input_columns

    @abstractmethod
    def job(self, window: pd.DataFrame, out: Path) -> JobResult:
        """Check one window (joined to ground truth when the type needs it) and write the reports to out."""

    @staticmethod
    @abstractmethod
    def write_baseline(data: pd.DataFrame, out: Path, options: BaselineOptions) -> None:
        """Write this type's baseline folder (what `baseline` points at) suggested from a dataset."""


class DataQualitySchedule(ScheduleBase):
    """Data quality: statistics and constraint checks of the captured inputs against the baseline."""

    check_types: ClassVar[tuple[str, ...]] = (
        "data_type_check", "completeness_check", "baseline_drift_check", "missing_column_check",
        "extra_column_check", "categorical_values_check")

    monitor_type: Literal["data_quality"] = "data_quality"
    min_window_rows: int = Field(50, ge=1, description="below this, drift checks are skipped (no false alarms)")

    def payload_columns(self) -> list[str] | None:
        """input_columns, else the baseline constraints' feature names."""
        from core.jsonio import read_json

        cons = Path(self.baseline) / "constraints.json"
        if self.input_columns or not cons.is_file():
            return self.input_columns
        return [f["name"] for f in read_json(cons).get("features", [])] or None

    def job(self, window, out):
        from monitor import jobs
        from monitor.capture_reader import feature_frame

        return jobs.data_quality(feature_frame(window, self.output_columns), self.baseline, out, self.min_window_rows)

    @staticmethod
    def write_baseline(data, out, options):
        from monitor import jobs
        from monitor.capture_reader import METADATA_COLUMNS

        jobs.baseline_data_quality(data.drop(columns=[c for c in (*options.exclude, *METADATA_COLUMNS)
                                                      if c in data.columns]), out)


class ModelQualitySchedule(ScheduleBase):
    """Model quality: metrics of the predictions against ground truth, checked against the baseline's."""

    check_types: ClassVar[tuple[str, ...]] = ("LessThanThreshold", "GreaterThanThreshold")
    needs_ground_truth: ClassVar[bool] = True
    path_fields: ClassVar[tuple[str, ...]] = (*ScheduleBase.path_fields, "ground_truth")

    monitor_type: Literal["model_quality"]
    ground_truth: str = Field(description="folder of ground-truth JSONL")
    problem_type: ProblemType = "BinaryClassification"
    inference_attribute: str = "prediction"
    probability_attribute: str | None = None
    probability_threshold: float | None = Field(None, description="label = probability > threshold when set")
    positive_label: str | int | float = 1

    def job(self, window, out):
        from monitor import jobs

        return jobs.model_quality(window, self.baseline, out, self.problem_type,
                                  inference_attribute=self.inference_attribute,
                                  probability_attribute=self.probability_attribute,
                                  probability_threshold=self.probability_threshold, positive_label=self.positive_label)

    @staticmethod
    def write_baseline(data, out, options):
        from monitor import jobs

        o = options
        jobs.baseline_model_quality(data, out, o.problem_type, o.label, o.prediction, o.probability,
                                    o.probability_threshold, o.positive_label)


class BiasSchedule(ScheduleBase):
    """Bias drift: Clarify's bias metrics of the window against the baseline analysis.json."""

    check_types: ClassVar[tuple[str, ...]] = ("bias_drift_check",)
    needs_ground_truth: ClassVar[bool] = True
    path_fields: ClassVar[tuple[str, ...]] = (*ScheduleBase.path_fields, "ground_truth")

    monitor_type: Literal["bias"]
    ground_truth: str = Field(description="folder of ground-truth JSONL")
    bias: BiasSpec = Field(description="the label and facets")

    def job(self, window, out):
        from monitor import jobs

        b = self.bias
        return jobs.bias(window, self.baseline, out, label=b.label, positive_label_values=b.positive_label_values,
                         facets=facets(b.facets), predicted_label=None if b.probability else b.predicted_label,
                         probability=b.probability, probability_threshold=b.probability_threshold, group=b.group)

    @staticmethod
    def write_baseline(data, out, options):
        from monitor import jobs

        o = options
        if not o.facets:
            raise ValueError("a bias baseline needs at least one facet (--facet)")
        jobs.baseline_bias(data, out, label=o.label, positive_label_values=[o.positive_label], facets=list(o.facets),
                           predicted_label=o.prediction if o.prediction in data.columns else None,
                           probability=o.probability)


class AttributionSchedule(ScheduleBase):
    """Feature-attribution drift: NDCG of the window's global SHAP ranking against the baseline's."""

    check_types: ClassVar[tuple[str, ...]] = ("feature_attribution_drift_check",)
    path_fields: ClassVar[tuple[str, ...]] = (*ScheduleBase.path_fields, "model")

    monitor_type: Literal["attribution"]
    model: str = Field(description="ONNX model explained")
    features: list[str] = Field(min_length=1, description="model feature columns, in the model's order")
    ndcg_threshold: float = Field(0.90, gt=0, le=1)
    explain_max_rows: int = Field(500, ge=1)

    def payload_columns(self) -> list[str] | None:
        return self.input_columns or self.features

    def job(self, window, out):
        from monitor import jobs

        return jobs.attribution(window, self.baseline, out, self.model, self.features, self.ndcg_threshold,
                                self.explain_max_rows)

    @staticmethod
    def write_baseline(data, out, options):
        from monitor import jobs

        if options.model is None or not options.features:
            raise ValueError("an attribution baseline needs the model and its features (--model, --features)")
        jobs.baseline_attribution(data, out, options.model, list(options.features))


SCHEDULE_TYPES: dict[str, type[ScheduleBase]] = {
    "data_quality": DataQualitySchedule, "model_quality": ModelQualitySchedule, "bias": BiasSchedule,
    "attribution": AttributionSchedule,
}


def _tag(v: Any) -> str | None:
    if isinstance(v, dict):
        return v.get("monitor_type", "data_quality")
    return getattr(v, "monitor_type", None)


Schedule = Annotated[
    Union[tuple(Annotated[cls, Tag(name)] for name, cls in SCHEDULE_TYPES.items())],
    Discriminator(_tag, custom_error_type="monitor_type",
                  custom_error_message=f"monitor_type must be one of {', '.join(SCHEDULE_TYPES)}"),
]
_ADAPTER: TypeAdapter = TypeAdapter(Schedule)


class MonitoringScheduleSpec:
    """A schedule of any monitor type: ``MonitoringScheduleSpec(**fields)`` returns the typed schedule its
    ``monitor_type`` names; as a pydantic field type it validates the same way."""

    def __new__(cls, **fields: Any) -> ScheduleBase:  # type: ignore[misc]
        return _ADAPTER.validate_python(fields)

    @classmethod
    def __get_pydantic_core_schema__(cls, _source, handler):
        return handler.generate_schema(Schedule)
