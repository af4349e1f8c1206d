"""The SageMaker capture record: captureData.endpointInput/endpointOutput, eventMetadata, eventVersion.

Encoding follows the content type's media type (parameters such as charset ignored): in the CSV list
-> CSV, in the JSON list -> JSON, anything else (or bytes that are not UTF-8) -> BASE64. Ferry adds the
production variant as a top-level "variant" field.
"""

from __future__ import annotations

import base64
import uuid
from datetime import datetime, timezone

from serving.spec import DataCaptureSpec


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _part(mode: str, data: bytes | str, content_type: str | None, spec: DataCaptureSpec) -> dict:
    media = _media_type(content_type)
    csv_types = {_media_type(c) for c in spec.csv_content_types}
    json_types = {_media_type(c) for c in spec.json_content_types}
    encoding = "CSV" if media in csv_types else "JSON" if media in json_types else "BASE64"
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    text = None
    if encoding != "BASE64":
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            encoding = "BASE64"
    if encoding == "BASE64":
        text = base64.b64encode(raw).decode("ascii")
    return {"observedContentType": content_type or "", "mode": mode, "data": text, "encoding": encoding}


def format_time(t: datetime) -> str:
    """ISO-8601 UTC with milliseconds and a Z, e.g. 2022-02-14T17:25:49.123Z."""
    t = t.astimezone(timezone.utc) if t.tzinfo else t.replace(tzinfo=timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def build_record(spec: DataCaptureSpec, *, variant: str,
                 input_data: bytes | str | None = None, input_content_type: str | None = None,
                 output_data: bytes | str | None = None, output_content_type: str | None = None,
                 inference_id: str | None = None, event_id: str | None = None,
                 inference_time: datetime | None = None) -> dict:
    """One capture record; the sides not listed in spec.capture (or given as None) are left out."""
    capture = {}
    if "input" in spec.capture and input_data is not None:
        capture["endpointInput"] = _part("INPUT", input_data, input_content_type, spec)
    if "output" in spec.capture and output_data is not None:
        capture["endpointOutput"] = _part("OUTPUT", output_data, output_content_type, spec)
    meta = {"eventId": event_id or str(uuid.uuid4())}
    if inference_id:
        meta["inferenceId"] = inference_id
    meta["inferenceTime"] = format_time(inference_time or datetime.now(timezone.utc))
    return {"captureData": capture, "eventMetadata": meta, "eventVersion": "0", "variant": variant}
