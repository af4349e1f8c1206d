"""A batch transform job: SageMaker's CreateTransformJob options, for local files and fsspec URIs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from core.errors import FerryError
from core.schema import Strict
from serving.spec import ModelSpec
from serving.transform import jsonpath

CSV, JSONLINES, JSON = "text/csv", "application/jsonlines", "application/json"


class TransformJob(Strict):
    """What to transform, with which model, and how (field names follow CreateTransformJob's)."""

    name: str = Field("transform", description="TransformJobName (also the endpoint name in errors and metrics)")
    model: ModelSpec
    input: str = Field(description="TransformInput S3Uri: a file, a folder or an fsspec prefix")
    output: str = Field(description="TransformOutput S3OutputPath: one <input>.out per input file, and the job "
                                    "record transform-job.json")
    content_type: Literal["text/csv", "application/jsonlines", "application/json"] = CSV
    accept: Literal["text/csv", "application/jsonlines", "application/json"] | None = Field(
        None, description="the output's type (default: the input's; with SplitType None, text/csv or application/json)")
    split_type: Literal["None", "Line"] = Field("Line", description="Line: each line a record; None: each file "
                                                                    "one request, as invoke_endpoint would send it")
    batch_strategy: Literal["SingleRecord", "MultiRecord"] = Field(
        "MultiRecord", description="MultiRecord packs as many records as fit in MaxPayloadInMB into one request")
    max_payload_mb: float = Field(6, gt=0, le=100, description="MaxPayloadInMB: the largest request")
    input_filter: str = Field("$", description="DataProcessing.InputFilter (JSONPath subset)")
    output_filter: str = Field("$", description="DataProcessing.OutputFilter (JSONPath subset)")
    join_source: Literal["None", "Input"] = "None"
    assemble_with: Literal["None", "Line"] = Field("Line", description="AssembleWith: Line puts one output record "
                                                                       "per line")
    max_concurrent_transforms: int | None = Field(None, ge=1, description=(
        "onnxruntime sessions working at once (Ray tasks or actors); default: the Ray cluster's CPUs"))
    chunk_mb: float = Field(8, gt=0, description="input read per task (a file is split at line ends)")
    compute: Literal["core", "tasks", "actors"] = Field("core", description=(
        "how Ray runs the onnxruntime sessions: core (Ray tasks; a worker process imports no Ray Data, keeps the "
        "job's session for its next tasks and for this driver's next job of the same model and options), tasks "
        "(Ray Data map_batches on tasks, each worker process keeping the session likewise) or actors (a Ray Data "
        "actor pool made for the job, one session per actor)"))

    @model_validator(mode="after")
    def _consistent(self) -> "TransformJob":
        for text in (self.input_filter, self.output_filter):
            try:
                jsonpath.parse(text)
            except FerryError as err:
                raise ValueError(str(err)) from None
        accept = self.accept or self.content_type
        if self.split_type == "Line":
            if self.content_type == JSON:
                raise ValueError("SplitType Line takes text/csv or application/jsonlines records; for a JSON "
                                 "document per file use SplitType None")
            if self.join_source == "Input" and accept != self.content_type:
                raise ValueError(f"JoinSource Input writes the input's format: accept must be {self.content_type}")
            if self.accept == JSON:
                raise ValueError("with SplitType Line, accept text/csv or application/jsonlines")
        else:
            if self.content_type == JSONLINES or accept == JSONLINES:
                raise ValueError("SplitType None sends each file whole: text/csv or application/json")
            if (self.input_filter, self.output_filter, self.join_source) != ("$", "$", "None"):
                raise ValueError("filters and JoinSource work on records: use SplitType Line")
        if self.assemble_with == "None" and self.split_type == "Line":
            raise ValueError("AssembleWith None concatenates records without a separator, which only fits "
                             "SplitType None; use AssembleWith Line")
        return self

    @property
    def output_type(self) -> str:
        return self.accept or self.content_type
