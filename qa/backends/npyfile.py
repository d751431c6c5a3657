"""Large .npy files written and read in slices with plain file reads and writes, never mapped.

Writing a new version copies every vector at least twice (staged segments -> scratch -> version,
then into FAISS). Through memory maps each page touched stays in the process's resident memory
while the map lives: ~5 KB a passage (its vector and its sentences' vectors), growing with the
collection. Read and written in slices, what is resident is one slice at a time.
"""

from __future__ import annotations

from array import array
from pathlib import Path
from typing import Iterable

import numpy as np

SLICE_ROWS = 1 << 12  # rows copied at a time (3 MB of float16 sentence vectors at 384 dimensions)


class NpyRows:
    """The rows of a saved C-ordered .npy array, read a slice at a time (`rows[lo:hi]` is a new
    in-memory array). Has the `shape`, `ndim`, `dtype` and `len` of the array."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        with open(self.path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read(f)
            self._offset = f.tell()
        if fortran:
            raise ValueError(f"{self.path} is Fortran-ordered")
        self.shape, self.dtype, self.ndim = tuple(shape), np.dtype(dtype), len(shape)
        self._row = int(np.prod(shape[1:], dtype=np.int64))

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index):
        if isinstance(index, slice):
            lo, hi, step = index.indices(len(self))
            hi = max(lo, hi)
            if step == 1:
                return self._read(lo, hi)
        # Scattered rows (e.g. the IVF training sample): mapped only for this read.
        return np.array(np.load(self.path, mmap_mode="r", allow_pickle=False)[index])

    def _read(self, lo: int, hi: int) -> np.ndarray:
        count = (hi - lo) * self._row
        offset = self._offset + lo * self._row * self.dtype.itemsize
        out = np.fromfile(self.path, self.dtype, count=count, offset=offset) if count else np.zeros(0, self.dtype)
        if len(out) != count:
            raise ValueError(f"{self.path} is shorter than its header says")
        return out.reshape((hi - lo,) + self.shape[1:])

    def slices(self, lo: int = 0, hi: int | None = None, rows: int = SLICE_ROWS) -> Iterable[np.ndarray]:
        """Rows lo..hi-1, a slice at a time."""
        hi = len(self) if hi is None else hi
        for start in range(lo, hi, rows):
            yield self._read(start, min(hi, start + rows))


def slices(a, lo: int, hi: int, rows: int = SLICE_ROWS) -> Iterable[np.ndarray]:
    """Rows lo..hi-1 of an NpyRows or of an array (e.g. memory-mapped), a slice at a time."""
    if isinstance(a, NpyRows):
        return a.slices(lo, hi, rows)
    return (np.asarray(a[start:min(hi, start + rows)]) for start in range(lo, hi, rows))


def write(path: str | Path, dtype, shape: tuple[int, ...], parts: Iterable[np.ndarray]) -> None:
    """Save an array given as consecutive row blocks (cast to `dtype`): the same bytes as np.save
    of the whole array, without ever holding it."""
    dtype = np.dtype(dtype)
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": tuple(shape)}
    rows = 0
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        for part in parts:
            part = np.ascontiguousarray(part, dtype=dtype)
            if part.shape[1:] != tuple(shape[1:]):
                raise ValueError(f"rows of shape {part.shape[1:]} written to an array of shape {shape}")
            f.write(part.data)  # the buffer itself: no bytes copy
            rows += len(part)
    if rows != shape[0]:
        raise ValueError(f"{rows} rows written to an array of {shape[0]}")


# Values an Appender holds before writing them (256 KB of int32 term ids).
APPEND_VALUES = 1 << 16


class Appender:
    """A 1-D .npy file written as its values come (`append`, `extend`, `len` like the typed array
    `array(typecode)` it stands in for), `buffer` values (APPEND_VALUES) at a time: its length
    need not be known up front. np.save pads the header so that the length can grow in place
    (numpy's GROWTH_AXIS_MAX_DIGITS), so the header of an empty array is written first and
    rewritten with the count at `close`: the same bytes as np.save of the whole array, which is
    never held."""

    def __init__(self, path: str | Path, typecode: str, buffer: int | None = None):
        self.path = Path(path)
        self.dtype = np.dtype(typecode)
        self._values = array(typecode)
        if self._values.itemsize != self.dtype.itemsize:
            raise ValueError(f"typed arrays of {typecode!r} are not numpy's {self.dtype}")
        self._buffer = max(1, APPEND_VALUES if buffer is None else buffer)
        self._written = 0
        self._file = open(self.path, "wb")
        self._header_size = self._write_header(0)

    def _write_header(self, count: int) -> int:
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": (count,)}
        self._file.seek(0)
        np.lib.format.write_array_header_1_0(self._file, header)
        return self._file.tell()

    def append(self, value) -> None:
        self._values.append(value)
        if len(self._values) >= self._buffer:
            self._flush()

    def extend(self, values) -> None:
        self._values.extend(values)
        if len(self._values) >= self._buffer:
            self._flush()

    def __len__(self) -> int:
        return self._written + len(self._values)

    def _flush(self) -> None:
        self._file.write(self._values)  # native order, as the header's descr says (np.save's too)
        self._written += len(self._values)
        del self._values[:]

    def close(self) -> None:
        """Write what is left and the header with the count."""
        if self._file.closed:
            return
        try:
            self._flush()
            end = self._file.tell()
            if self._write_header(self._written) != self._header_size:  # a numpy without the padding
                raise ValueError(f"{self.path}: the .npy header changed size with the array's length")
            self._file.seek(end)
        finally:
            self._file.close()

    def __enter__(self) -> "Appender":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
