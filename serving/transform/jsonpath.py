"""The JSONPath subset SageMaker's batch transform documents for InputFilter and OutputFilter.

    $                   the whole record
    $[1:]  $[0,5:]  $[-1]  $[1:3]      CSV fields / JSON array items by index and slice (mixable)
    $.features  $['id','SageMakerOutput']   JSON object keys (one key: its value; several: an object)
    $.features[1:]      a key, then indexes into its array

A CSV row is a JSON array of its fields, as SageMaker treats it. Expressions are at most 63 characters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.errors import FerryError, bad_request

_INDEX = re.compile(r"^\s*(-?\d+)?\s*(:)?\s*(-?\d+)?\s*$")
_KEYS = re.compile(r"""^\s*(['"])[^'"]*\1\s*(,\s*(['"])[^'"]*\3\s*)*$""")


@dataclass(frozen=True)
class Path:
    """A parsed expression: `keys` (object keys, applied first), then `items` (index/slice selectors)."""

    text: str
    keys: tuple[str, ...] = ()
    items: tuple[int | slice, ...] = ()

    @property
    def whole(self) -> bool:
        return not self.keys and not self.items

    def columns(self, width: int) -> list[int]:
        """The field positions selected out of `width` (CSV rows); a position out of range is an error."""
        if self.keys:
            raise FerryError(bad_request(f"{self.text!r} selects object keys; a CSV row only has positions"))
        return self._positions(width)

    def _positions(self, width: int) -> list[int]:
        if not self.items:
            return list(range(width))
        out: list[int] = []
        for item in self.items:
            if isinstance(item, slice):
                out += range(width)[item]
            else:
                if not -width <= item < width:
                    raise FerryError(bad_request(f"{self.text!r}: index {item} is outside a record of {width} fields"))
                out.append(item % width)
        return out

    def apply(self, value):
        """Select from one JSON value (an object or an array); a missing key or index is an error."""
        if self.keys:
            if not isinstance(value, dict):
                raise FerryError(bad_request(f"{self.text!r} selects keys but the record is a {type(value).__name__}"))
            missing = [k for k in self.keys if k not in value]
            if missing:
                raise FerryError(bad_request(f"{self.text!r}: the record has no key {missing[0]!r}"))
            value = value[self.keys[0]] if len(self.keys) == 1 else {k: value[k] for k in self.keys}
        if self.items:
            if not isinstance(value, list):
                raise FerryError(bad_request(f"{self.text!r} selects indexes but the value is a {type(value).__name__}"))
            value = [value[i] for i in self._positions(len(value))]
        return value


def parse(text: str | None) -> Path:
    """Parse an expression of the subset; a clear 400 for anything else."""
    text = (text or "$").strip()
    if len(text) > 63:
        raise FerryError(bad_request(f"JSONPath {text[:70]!r}... is longer than 63 characters"))
    if not text.startswith("$"):
        raise FerryError(bad_request(f"JSONPath {text!r} must start with $"))
    rest, keys, items = text[1:], (), ()
    m = re.match(r"^\.([A-Za-z_][\w-]*)", rest)
    if m:
        keys, rest = (m.group(1),), rest[m.end():]
    if rest.startswith("[") and rest.endswith("]"):
        inner = rest[1:-1]
        if _KEYS.match(inner):
            if keys:
                raise FerryError(bad_request(f"JSONPath {text!r}: keys after a key are not supported"))
            keys = tuple(k.strip()[1:-1] for k in inner.split(","))
        else:
            items = tuple(_item(part, text) for part in inner.split(","))
        rest = ""
    if rest:
        raise FerryError(bad_request(
            f"JSONPath {text!r} is outside the supported subset: $, $[1:], $[0,5:], $.key, $['a','b'], $.key[1:]"))
    return Path(text, keys, items)


def _item(part: str, text: str) -> int | slice:
    m = _INDEX.match(part)
    if not m or not (m.group(1) or m.group(2)):
        raise FerryError(bad_request(f"JSONPath {text!r}: {part.strip()!r} is not an index or a slice"))
    start = int(m.group(1)) if m.group(1) else None
    if not m.group(2):
        return start
    return slice(start, int(m.group(3)) if m.group(3) else None)
