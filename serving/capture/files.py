"""Rotated JSONL capture files: <destination>/<endpoint>/<variant>/yyyy/mm/dd/hh/<mm-ss-mmm-uuid>.jsonl.

The hour folder comes from each record's inferenceTime. A file is appended batch by batch (one write
and flush per batch, so readers see whole lines) and replaced by a new one when its hour ends, it
reaches max_file_bytes, or it is older than rotate_after_s.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Literal

import orjson
from pydantic import Field

from core.schema import Strict
from serving.capture.sink import CaptureSink


class RotatingJsonlWriter:
    """Appends records to the hour-folder files of one endpoint (not thread-safe: one writer per thread)."""

    def __init__(self, destination: str | Path, endpoint: str, max_file_bytes: int = 64 * 1024 * 1024,
                 rotate_after_s: float = 300.0):
        self.root = Path(destination) / endpoint
        self.max_file_bytes = max_file_bytes
        self.rotate_after_s = rotate_after_s
        self._open: dict[tuple[str, str], tuple[IO[bytes], float]] = {}

    def _file(self, variant: str, hour: str) -> IO[bytes]:
        key = (variant, hour)
        cur = self._open.get(key)
        if cur is not None:
            f, opened = cur
            if f.tell() < self.max_file_bytes and time.monotonic() - opened < self.rotate_after_s:
                return f
            f.close()
        for (v, h), (f, _) in list(self._open.items()):  # files of past hours are done
            if v == variant and h != hour:
                f.close()
                del self._open[(v, h)]
        folder = self.root / variant / hour
        folder.mkdir(parents=True, exist_ok=True)
        now = datetime.now(timezone.utc)
        name = f"{now:%M-%S}-{now.microsecond // 1000:03d}-{uuid.uuid4()}.jsonl"
        f = open(folder / name, "ab")
        self._open[key] = (f, time.monotonic())
        return f

    def write(self, records: list[dict]) -> None:
        """Append records (each batch one write and flush per file)."""
        groups: dict[tuple[str, str], list[bytes]] = {}
        for r in records:
            t = r["eventMetadata"]["inferenceTime"]  # 2022-02-14T17:25:49.123Z
            hour = f"{t[0:4]}/{t[5:7]}/{t[8:10]}/{t[11:13]}"
            groups.setdefault((r.get("variant") or "AllTraffic", hour), []).append(orjson.dumps(r))
        for (variant, hour), lines in groups.items():
            f = self._file(variant, hour)
            f.write(b"\n".join(lines) + b"\n")
            f.flush()

    def close(self) -> None:
        for f, _ in self._open.values():
            f.close()
        self._open.clear()


class FilesCaptureConfig(Strict):
    """Rotated JSONL files under a folder: a destination with no scheme, or file://<folder>."""

    type: Literal["file"] = "file"
    folder: str = Field(min_length=1, description="capture root; files go to <folder>/<endpoint>/...")

    @classmethod
    def from_destination(cls, destination: str) -> "FilesCaptureConfig":
        return cls(folder=destination.removeprefix("file://"))


class JsonlFileSink(CaptureSink):
    kind = "files"
    config_class = FilesCaptureConfig

    @classmethod
    def from_config(cls, config: FilesCaptureConfig, endpoint: str, kafka_bootstrap: str | None = None, **options):
        return cls(config.folder, endpoint, **options)

    def __init__(self, destination: str | Path, endpoint: str, max_file_bytes: int = 64 * 1024 * 1024,
                 rotate_after_s: float = 300.0, **kw):
        self.writer = RotatingJsonlWriter(destination, endpoint, max_file_bytes, rotate_after_s)
        super().__init__(endpoint, **kw)

    def write_batch(self, records: list[dict]) -> list[dict]:
        self.writer.write(records)
        return []

    def close_backend(self) -> None:
        self.writer.close()
