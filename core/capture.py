"""The SageMaker data-capture record: written by the server, read back by the monitor.

A record is ``{"captureData": {"endpointInput": part, "endpointOutput": part}, "eventMetadata": {"eventId",
"inferenceId"?, "inferenceTime"}, "eventVersion": "0"}`` plus Ferry's top-level ``"variant"``. A part is
``{"observedContentType", "mode": "INPUT"|"OUTPUT", "data", "encoding": "CSV"|"JSON"|"BASE64"}``: the
encoding follows the media type (CSV and JSON types as configured, as SageMaker's DataCaptureConfig
does; anything else, or bytes that are not UTF-8, is BASE64). `payload` turns a part back into the bytes
and content type that core.payloads' codecs read.
"""

from __future__ import annotations

import base64
import os
import time
from datetime import datetime, timezone

from core.payloads.base import media_type


class RecordFormat:
    """How an endpoint's records are written: which sides, which media types travel as CSV or JSON text."""

    def __init__(self, sides=("input", "output"), csv_types=("text/csv",), json_types=("application/json",)):
        self.input = "input" in sides
        self.output = "output" in sides
        self.csv_types = frozenset(media_type(c) for c in csv_types)
        self.json_types = frozenset(media_type(c) for c in json_types)

    def _part(self, mode: str, data: bytes | str, content_type: str | None) -> dict:
        media = media_type(content_type)
        raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        encoding = "CSV" if media in self.csv_types else "JSON" if media in self.json_types else "BASE64"
        if encoding != "BASE64":
            try:
                return {"observedContentType": content_type or "", "mode": mode, "data": raw.decode("utf-8"),
                        "encoding": encoding}
            except UnicodeDecodeError:
                pass
        return {"observedContentType": content_type or "", "mode": mode,
                "data": base64.b64encode(raw).decode("ascii"), "encoding": "BASE64"}

    def record(self, *, variant: str, input_data: bytes | str | None = None, input_content_type: str | None = None,
               output_data: bytes | str | None = None, output_content_type: str | None = None,
               inference_id: str | None = None, event_id: str | None = None,
               inference_time: datetime | float | None = None) -> dict:
        """One capture record; sides not captured (or given as None) are left out. `inference_time` is a
        datetime or seconds since the epoch (default: now)."""
        capture = {}
        if self.input and input_data is not None:
            capture["endpointInput"] = self._part("INPUT", input_data, input_content_type)
        if self.output and output_data is not None:
            capture["endpointOutput"] = self._part("OUTPUT", output_data, output_content_type)
        meta = {"eventId": event_id or new_event_id()}
        if inference_id:
            meta["inferenceId"] = inference_id
        if inference_time is None or isinstance(inference_time, float):
            meta["inferenceTime"] = format_epoch(time.time() if inference_time is None else inference_time)
        else:
            meta["inferenceTime"] = format_time(inference_time)
        return {"captureData": capture, "eventMetadata": meta, "eventVersion": "0", "variant": variant}


def new_event_id() -> str:
    """A random (version 4) UUID string, as str(uuid.uuid4()) writes it, from a pool made 256 at a time from one
    os.urandom call (0.6 us an id against 2.5; a forked child starts a pool of its own)."""
    try:
        return _ids.pop()
    except IndexError:
        raw = os.urandom(16 * 256).hex()
        _ids.extend(f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"
                    for h in (raw[i:i + 32] for i in range(0, len(raw), 32)))
        return _ids.pop()


_ids: list[str] = []
os.register_at_fork(after_in_child=_ids.clear)


def format_time(t: datetime) -> str:
    """ISO-8601 UTC with milliseconds and a Z, e.g. 2022-02-14T17:25:49.123Z."""
    t = t.astimezone(timezone.utc) if t.tzinfo else t.replace(tzinfo=timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def format_epoch(t: float) -> str:
    """format_time for seconds since the epoch, with the second's text cached (records come in bursts)."""
    second = int(t)
    global _last_second
    if _last_second[0] != second:
        _last_second = (second, time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second)))
    return f"{_last_second[1]}{int((t - second) * 1000):03d}Z"


_last_second: tuple[int, str] = (-1, "")


def payload(part: dict) -> tuple[bytes, str]:
    """A record part's bytes and observed content type (ValueError when its data cannot be decoded)."""
    data = part.get("data")
    if not isinstance(data, str):
        raise ValueError("the part has no data")
    content_type = str(part.get("observedContentType") or "")
    if part.get("encoding") == "BASE64":
        try:
            return base64.b64decode(data, validate=True), content_type
        except (ValueError, TypeError):
            raise ValueError("BASE64 data that does not decode") from None
    return data.encode("utf-8"), content_type


def build_record(options, **fields) -> dict:
    """One record written as `options` (a DataCaptureSpec: capture, csv_content_types, json_content_types)
    says; for one-off records (tests, tools). Servers keep a RecordFormat."""
    return RecordFormat(options.capture, options.csv_content_types, options.json_content_types).record(**fields)
