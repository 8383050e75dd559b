"""The one ``.npz`` file format of jaxvi (floor 3): checkpoints and ``approx.save`` both use it.

``write_npz`` writes atomically and durably: the arrays go to a temporary file created
exclusively, under a random name, in the target's folder (``tempfile.mkstemp``), which is
flushed and ``fsync``-ed, then renamed over the target with ``os.replace`` (which replaces a
symlink at the target instead of following it), and the folder is ``fsync``-ed so the rename
survives a power loss.  A crash at any moment leaves the previous file or the new one.

``NpzReader`` reads such a file defensively: every member is an uncompressed ``.npy`` whose
header (dtype, shape) is read and checked before any data, numbers only (no pickles, strings or
objects), and its declared size must match the bytes the archive holds for it -- so a small file
cannot make jaxvi allocate gigabytes (no decompression bombs, no declared 4 TB arrays).  The
callers say which members they expect with which dtype and shape; anything else is refused.
Every problem is one ``ValueError`` naming the file and what is wrong.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import zipfile

import numpy as np
from numpy.lib import format as npy_format

__all__ = ["write_npz", "NpzReader", "encode_json", "MAX_META_BYTES"]

#: Largest JSON metadata member accepted.
MAX_META_BYTES = 1 << 20
_NUMERIC_KINDS = "biuf"


def encode_json(obj) -> np.ndarray:
    """``obj`` as JSON in a uint8 array (how the files keep their metadata)."""
    return np.frombuffer(json.dumps(obj).encode(), dtype=np.uint8)


def _fsync_folder(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # e.g. Windows cannot open folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_npz(path, arrays: dict, what: str = "file") -> None:
    """Write ``arrays`` (name -> array of numbers) to ``path`` as an uncompressed ``.npz``, atomically."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"{what}: {path!r} is a folder; give a file path such as "
                                f"{os.path.join(path, 'fit.npz')!r}")
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
                for name, value in arrays.items():
                    value = np.asarray(value)
                    if value.dtype.kind not in _NUMERIC_KINDS:
                        raise TypeError(f"{what}: cannot write {name!r} of dtype {value.dtype} (numbers only)")
                    with zf.open(name + ".npy", "w", force_zip64=True) as member:
                        npy_format.write_array(member, value, allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic; a symlink at ``path`` is replaced, never followed
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_folder(folder)


class NpzReader:
    """Open ``path`` and read the headers of its members; ``expect`` them, then ``read`` them.

    ``what`` names the kind of file in errors ("checkpoint"), ``advice`` says what to do.
    """

    def __init__(self, path, what: str, advice: str):
        self.path = os.fspath(path)
        self.what, self.advice = what, advice
        self._zip = None
        try:
            self._zip = zipfile.ZipFile(self.path)
            self.headers = self._read_headers()
        except ValueError:
            self.close()
            raise
        except (OSError, EOFError, zipfile.BadZipFile, RuntimeError, NotImplementedError) as exc:
            self.close()
            if isinstance(exc, zipfile.BadZipFile) or not zipfile.is_zipfile(self.path):
                self.fail("it is not an .npz archive (truncated or corrupted?)")
            self.fail(f"it cannot be read ({type(exc).__name__}: {exc})")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self._zip is not None:
            self._zip.close()
            self._zip = None

    def fail(self, problem: str):
        raise ValueError(f"{self.what} {self.path!r}: {problem}; {self.advice}") from None

    def _read_headers(self) -> dict:
        headers = {}
        archive_size = os.path.getsize(self.path)
        for info in self._zip.infolist():
            name = info.filename[:-4] if info.filename.endswith(".npy") else None
            if name is None or name in headers:
                self.fail(f"its member {info.filename!r} is not one array of a jaxvi file")
            if info.compress_type != zipfile.ZIP_STORED:
                self.fail(f"its member {name!r} is compressed (jaxvi writes uncompressed files)")
            if info.file_size > archive_size:
                self.fail(f"its member {name!r} declares {info.file_size} bytes in a file of {archive_size}")
            with self._zip.open(info) as f:
                try:
                    version = npy_format.read_magic(f)
                    if version == (1, 0):
                        shape, fortran, dtype = npy_format.read_array_header_1_0(f)
                    elif version in ((2, 0), (3, 0)):
                        shape, fortran, dtype = npy_format.read_array_header_2_0(f)
                    else:
                        raise ValueError(f"npy version {version}")
                    offset = f.tell()
                except (ValueError, EOFError, SyntaxError, TypeError) as exc:
                    self.fail(f"its member {name!r} has a damaged array header ({exc})")
            if dtype.hasobject or dtype.kind not in _NUMERIC_KINDS or dtype.fields is not None:
                kind = "strings" if dtype.kind in "US" else "Python objects (a pickle)" if dtype.hasobject else "data"
                self.fail(f"its member {name!r} holds {kind} of dtype {dtype}, not numbers")
            if any(not isinstance(d, int) or d < 0 for d in shape):
                self.fail(f"its member {name!r} has an invalid shape {shape}")
            nbytes = math.prod(shape) * dtype.itemsize
            if offset + nbytes != info.file_size:
                self.fail(f"its member {name!r} declares a {dtype} array of shape {shape} ({nbytes:,d} bytes) "
                          f"but holds {max(info.file_size - offset, 0):,d} bytes")
            headers[name] = (dtype, tuple(shape), bool(fortran), info)
        return headers

    # -- what the caller expects ------------------------------------------------------------------
    def names(self, required=(), allowed=None, prefixes=()) -> None:
        """Every name in ``required`` is there; no name outside ``allowed`` (or starting with ``prefixes``)."""
        missing = [k for k in required if k not in self.headers]
        if missing:
            self.fail(f"it has no {', '.join(repr(k) for k in missing)} (it holds {sorted(self.headers)})")
        if allowed is not None:
            extra = [k for k in self.headers if k not in allowed and not k.startswith(tuple(prefixes))]
            if extra:
                self.fail(f"it holds unexpected members {sorted(extra)}")

    def expect(self, name: str, kinds: str, shape=None, ndim: int | None = None, max_size: int | None = None):
        """Member ``name`` has a dtype of one of ``kinds`` (numpy kind letters) and ``shape`` (or ``ndim``)."""
        if name not in self.headers:
            self.fail(f"it has no {name!r}")
        dtype, got, _, _ = self.headers[name]
        if dtype.kind not in kinds:
            self.fail(f"its {name!r} has dtype {dtype} (expected {'/'.join(_KIND_NAMES[k] for k in kinds)})")
        if shape is not None and tuple(shape) != got:
            self.fail(f"its {name!r} has shape {got}, expected {tuple(shape)}")
        if ndim is not None and len(got) != ndim:
            self.fail(f"its {name!r} has shape {got}, expected {ndim} dimension(s)")
        if max_size is not None and math.prod(got) > max_size:
            self.fail(f"its {name!r} has {math.prod(got):,d} elements (at most {max_size:,d} expected)")

    def read(self, name: str, finite: bool = False) -> np.ndarray:
        """The data of member ``name`` (its header was checked when the file was opened)."""
        dtype, shape, fortran, info = self.headers[name]
        with self._zip.open(info) as f:
            f.seek(info.file_size - math.prod(shape) * dtype.itemsize)
            data = f.read()
        arr = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C").copy()
        if finite and arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            self.fail(f"its {name!r} holds non-finite values (NaN or inf)")
        return arr

    def read_json(self, name: str = "meta", required=()) -> dict:
        """Member ``name`` as the JSON dict it encodes, with the keys ``required``."""
        self.expect(name, "u", ndim=1, max_size=MAX_META_BYTES)
        try:
            meta = json.loads(self.read(name).tobytes().decode())
        except (UnicodeDecodeError, ValueError, RecursionError):
            meta = None
        if not isinstance(meta, dict) or not set(required) <= set(meta):
            self.fail("its metadata are damaged")
        return meta


_KIND_NAMES = {"b": "bool", "i": "integer", "u": "unsigned integer", "f": "float"}


def fingerprint(obj) -> str:
    """A digest of a fit's configuration (optimizers by their ``config``, functions by name, numbers by
    value) that is the same in every process, so a checkpoint can tell another optimizer from its own."""
    import hashlib
    import types

    def stable(x, depth=0):
        if depth > 24:
            return "..."
        config = getattr(x, "config", None)
        if isinstance(config, tuple):
            return f"{type(x).__name__}{stable(config, depth + 1)}"
        if isinstance(x, (tuple, list)):
            return "(" + ",".join(stable(v, depth + 1) for v in x) + ")"
        if isinstance(x, dict):
            return "{" + ",".join(f"{k!r}:{stable(v, depth + 1)}" for k, v in sorted(x.items(), key=repr)) + "}"
        if isinstance(x, types.CodeType):
            return f"code:{x.co_qualname}"
        if isinstance(x, (types.FunctionType, types.BuiltinFunctionType, types.MethodType)):
            return f"fn:{getattr(x, '__module__', '')}.{getattr(x, '__qualname__', '?')}"
        if isinstance(x, bytes):
            return x.hex()
        if x is None or isinstance(x, (bool, int, float, complex, str, np.generic)):
            return repr(x)
        if isinstance(x, np.ndarray) or hasattr(x, "__array__") and np.ndim(x) == 0:
            arr = np.asarray(x)
            return f"array{arr.dtype.str}{arr.shape}{arr.tobytes().hex() if arr.size <= 256 else ''}"
        return type(x).__name__  # a user's transformation or schedule: compared by kind only

    return hashlib.sha256(stable(obj).encode()).hexdigest()[:16]
