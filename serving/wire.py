"""How Ferry's hop types (`Payload`, `ModelResult`) write their numpy arrays when pickled.

numpy's own reducer writes an array through a module-level function, its dtype object (itself reduced and
restored with a state) and its memory order: ~5 us to write and ~3 to read a one-row array. An array wrapped
in `Wire` is written as its raw buffer, dtype string and shape (pickle protocol 5 puts the buffer in-band), half
of that, and read back as the same writable ndarray. Object arrays, non-contiguous ones and older protocols
take numpy's reducer; below protocol 5 (copy.copy, deepcopy) nothing is wrapped.
"""

from __future__ import annotations

import pickle

import numpy as np


def array(buffer, dtype: str, shape: tuple) -> np.ndarray:
    return np.frombuffer(buffer, dtype).reshape(shape)


class Wire:
    """An ndarray to pickle as its raw buffer; unpickled as the plain ndarray."""

    __slots__ = ("a",)

    def __init__(self, a: np.ndarray):
        self.a = a

    def __reduce_ex__(self, protocol):
        a = self.a
        if type(a) is np.ndarray and a.flags.c_contiguous and not a.dtype.hasobject:
            return array, (pickle.PickleBuffer(a), a.dtype.str, a.shape)
        return a.__reduce_ex__(protocol)


def wire(a, protocol: int):
    """`a` ready to pickle: an ndarray wrapped (protocol 5), anything else (None, a list) as it is."""
    return Wire(a) if protocol >= 5 and type(a) is np.ndarray else a


def wire_dict(d: dict | None, protocol: int) -> dict | None:
    return d if d is None or protocol < 5 else {k: wire(v, protocol) for k, v in d.items()}
