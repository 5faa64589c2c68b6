"""A GGUF file's header: its key/value metadata and its tensors' names, without their data.

The ``gguf`` package's ``GGUFReader`` parses every field into numpy arrays, the tokenizer's
262,144 strings included: 10 s for the embedded model's header on this machine. The
memory estimate needs a dozen numbers, so this reads the header's layout (GGUF v2/v3:
magic, version, tensor count, key/value count, then the pairs) and skips what it does not
keep; 0.1 s for the same file. Strings and arrays of strings (the vocabulary) are skipped
by their lengths; arrays of numbers are kept only when short. The tensor infos follow the
metadata: a LoRA adapter's tensor names are checked before llama.cpp loads it.
"""

from __future__ import annotations

import mmap
import struct
from typing import Any

_MAGIC = b"GGUF"
# value type → struct format (GGUF's gguf_type enum); 8 is a string, 9 an array.
_SCALARS = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_STRING, _ARRAY = 8, 9
_KEEP_ARRAY = 1024  # longer arrays (vocabularies, merges) are skipped


class GGUFHeaderError(ValueError):
    """Not a GGUF file, or a header cut short."""


def read_metadata(path: str) -> dict[str, Any]:
    return read_header(path)[0]


def read_header(path: str) -> tuple[dict[str, Any], list[str]]:
    """The metadata and the tensor names; ``GGUFHeaderError`` (a ``ValueError``) when the
    file is not a GGUF or its header is cut short, ``OSError`` when it cannot be read."""
    with open(path, "rb") as file:
        if not file.read(4):
            raise GGUFHeaderError("the file is empty")
        with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
            reader = _Reader(data)
            return reader.metadata(), reader.tensor_names()


class _Reader:
    def __init__(self, data: mmap.mmap) -> None:
        self._data = data
        self._at = 0
        self._tensors = 0

    def metadata(self) -> dict[str, Any]:
        if self._take(4) != _MAGIC:
            raise GGUFHeaderError("not a GGUF file (bad magic)")
        version = self._unpack("<I")
        if version not in (2, 3):
            raise GGUFHeaderError(f"GGUF version {version} is not supported")
        self._tensors = self._unpack("<Q")
        count = self._unpack("<Q")
        values: dict[str, Any] = {}
        for _ in range(count):
            key = self._string()
            values[key] = self._value(self._unpack("<I"))
        return values

    def tensor_names(self) -> list[str]:
        """After ``metadata``: each tensor's name (its shape, type and offset skipped)."""
        names = []
        for _ in range(self._tensors):
            names.append(self._string())
            dims = self._unpack("<I")
            self._at += 8 * dims + 4 + 8  # the dims, the type, the offset
        return names

    def _value(self, kind: int) -> Any:
        if kind in _SCALARS:
            return self._unpack(_SCALARS[kind])
        if kind == _STRING:
            return self._string()
        if kind != _ARRAY:
            raise GGUFHeaderError(f"unknown GGUF value type {kind}")
        item, length = self._unpack("<I"), self._unpack("<Q")
        if item in _SCALARS and length <= _KEEP_ARRAY:
            return [self._unpack(_SCALARS[item]) for _ in range(length)]
        if item in _SCALARS:
            self._at += struct.calcsize(_SCALARS[item]) * length
        elif item == _STRING:
            for _ in range(length):
                size = self._unpack("<Q")  # before the += : it moves the cursor itself
                self._at += size
        else:
            raise GGUFHeaderError(f"unsupported GGUF array of type {item}")
        if self._at > len(self._data):
            raise GGUFHeaderError("the GGUF header is cut short")
        return None

    def _string(self) -> str:
        return self._take(self._unpack("<Q")).decode("utf-8", errors="replace")

    def _take(self, size: int) -> bytes:
        end = self._at + size
        if end > len(self._data):
            raise GGUFHeaderError("the GGUF header is cut short")
        chunk = self._data[self._at : end]
        self._at = end
        return chunk

    def _unpack(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        if self._at + size > len(self._data):
            raise GGUFHeaderError("the GGUF header is cut short")
        (value,) = struct.unpack_from(fmt, self._data, self._at)
        self._at += size
        return value
