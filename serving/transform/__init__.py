"""Batch transform (SageMaker's CreateTransformJob) on Ray Data: `run_transform(TransformJob(...))`, or
`ferry transform` on the command line. See docs/endpoints.md."""

from serving.transform.job import job_status, run_transform
from serving.transform.spec import TransformJob

__all__ = ["TransformJob", "job_status", "run_transform"]
