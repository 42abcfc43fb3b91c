"""A pickle reader that rebuilds only what a RadioML 2016 file holds, and never runs its code.

RML2016.10a/b is a pickle, and a pickle is a program: any ``__reduce__`` payload runs on load.
:class:`RadioMLUnpickler` resolves no global by import. It knows a fixed table of names
(numpy's array, dtype and scalar reconstructors under their numpy 1.x, 2.x and Python 2
spellings, and ``_codecs.encode`` for latin-1 bytes) and maps each to a checking stand-in;
anything else raises PickleRefused naming the global. The stand-ins build arrays only
from plain numeric dtypes, and only when the data bytes present match the claimed shape, so a
tiny pickle cannot make numpy allocate a huge (or object) array.
"""

from __future__ import annotations

import math
import pickle
import pickletools
import re
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

#: Nesting a RadioML pickle never exceeds (dict > key tuple > array state > shape: about 5).
MAX_DEPTH = 100
#: Pickle instructions allowed; RML2016.10a has about 10,000 (bounds the pre-scan's time).
MAX_OPCODES = 1_000_000
#: Plain numeric dtype codes a pickled RadioML array may use ("f4", "<i8", "c8", "b1", ...).
_DTYPE_CODE = re.compile(r"[<>|=]?(?:[fc](?:2|4|8|16)|[iu][1248]|b1|\?)")
_BYTEORDERS = ("<", ">", "|", "=")


class PickleRefused(pickle.UnpicklingError):
    """Something a RadioML file never holds (a global, an object dtype): refused, not unreadable."""


class _Malformed(pickle.UnpicklingError):
    """A structure no pickler writes (reported as an unreadable pickle)."""


class _Marker:
    """Stands for ``numpy.ndarray`` as the class argument of ``_reconstruct``; not callable."""


_NDARRAY = _Marker()


class _DtypeStub:
    """What ``numpy.dtype(code, align, copy)`` gives here: a checked code, built later.

    numpy's own ``dtype.__setstate__`` would accept fields, subarrays and flags from the file;
    this one accepts a byte order and nothing else.
    """

    def __init__(self, code: Any, align: Any = False, copy: Any = True) -> None:
        if not isinstance(code, str) or not _DTYPE_CODE.fullmatch(code):
            raise PickleRefused(
                f"the pickle holds an array of dtype {str(code)[:40]!r}; RadioML 2016 arrays "
                "hold plain numbers (fedsb never unpickles Python objects)"
            )
        self.dtype = np.dtype(code)

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) < 5 or any(s is not None for s in state[2:5]):
            raise _Malformed("unsupported dtype state (fields or subarrays)")
        order = state[1]
        if order not in _BYTEORDERS:
            raise _Malformed(f"unsupported dtype byte order {str(order)[:8]!r}")
        if order in "<>" and self.dtype.itemsize > 1:
            self.dtype = self.dtype.newbyteorder(order)


def _real_dtype(value: Any) -> np.dtype:
    if not isinstance(value, _DtypeStub):
        raise _Malformed("an array without a plain numeric dtype")
    return value.dtype


def _raw_bytes(data: Any) -> bytes | bytearray:
    """Array data as bytes: Python 2 ``str`` data arrives as latin-1 text."""
    if isinstance(data, str):
        return data.encode("latin1")
    if isinstance(data, bytes | bytearray):
        return data
    raise _Malformed("array data is not a byte string")


def _shape(value: Any) -> tuple[int, ...]:
    if not isinstance(value, tuple) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in value
    ):
        raise _Malformed("array shape is not a tuple of sizes")
    return value


def _check_size(shape: tuple[int, ...], dtype: np.dtype, data: bytes | bytearray) -> None:
    """The data present must be exactly what the shape claims (checked before any allocation)."""
    claimed = math.prod(shape) * dtype.itemsize
    if claimed != len(data):
        raise _Malformed(f"array claims {claimed} bytes but holds {len(data)}")


class _SafeArray(np.ndarray):
    """The array ``_reconstruct`` returns; its ``__setstate__`` checks before numpy's runs."""

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise _Malformed("unsupported array state")
        version = state[0] if len(state) == 5 else 0
        shape, dtype, fortran, data = state[-4:]
        shape, dtype, data = _shape(shape), _real_dtype(dtype), _raw_bytes(data)
        if not isinstance(fortran, bool | int) or version not in (0, 1):
            raise _Malformed("unsupported array state")
        _check_size(shape, dtype, data)
        super().__setstate__((1, shape, dtype, bool(fortran), bytes(data)))


def _reconstruct(cls: Any, shape: Any = (0,), typecode: Any = b"b") -> _SafeArray:
    """``numpy.core.multiarray._reconstruct``: an empty array that BUILD fills in."""
    if cls is not _NDARRAY:
        raise PickleRefused("the pickle rebuilds something other than a numpy array")
    return np.ndarray.__new__(_SafeArray, (0,), np.uint8)


def _frombuffer(buf: Any, dtype: Any, shape: Any, order: Any = "C") -> np.ndarray:
    """``numpy.core.numeric._frombuffer`` (protocol 5 arrays)."""
    data, real, shape = _raw_bytes(buf), _real_dtype(dtype), _shape(shape)
    if order not in ("C", "F"):
        raise _Malformed("unsupported array order")
    _check_size(shape, real, data)
    return np.frombuffer(bytes(data), dtype=real).reshape(shape, order=order).view(_SafeArray)


def _scalar(dtype: Any, data: Any = b"") -> int | float | complex | bool:
    """``numpy.core.multiarray.scalar``: a numpy scalar, returned as the Python number."""
    real, raw = _real_dtype(dtype), _raw_bytes(data)
    _check_size((), real, raw)
    return np.frombuffer(bytes(raw), dtype=real)[0].item()


def _latin1_encode(text: Any, encoding: Any = "latin1", *rest: Any) -> bytes:
    """``_codecs.encode``, as protocol-2 pickles use it for bytes: latin-1 text only."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1") or rest:
        raise PickleRefused("the pickle uses _codecs.encode for something other than bytes")
    return text.encode("latin1")


_ALLOWED: dict[tuple[str, str], Any] = {("_codecs", "encode"): _latin1_encode}
for _core in ("numpy.core", "numpy._core"):
    _ALLOWED[(f"{_core}.multiarray", "_reconstruct")] = _reconstruct
    _ALLOWED[(f"{_core}.multiarray", "scalar")] = _scalar
    _ALLOWED[(f"{_core}.numeric", "_frombuffer")] = _frombuffer
_ALLOWED[("numpy", "ndarray")] = _NDARRAY
_ALLOWED[("numpy", "dtype")] = _DtypeStub


class RadioMLUnpickler(pickle.Unpickler):
    """Unpickler whose globals are the stand-ins above; any other global is refused."""

    def __init__(self, handle: BinaryIO) -> None:
        super().__init__(handle, encoding="latin1")

    def find_class(self, module: str, name: str) -> Any:
        """The allowed stand-in for ``module.name``; any other global is refused."""
        found = _ALLOWED.get((module, name))
        if found is None:
            shown = " ".join(f"{module}.{name}".split())[:120]
            raise PickleRefused(
                f"the pickle wants to call {shown}, which a RadioML 2016 file never holds "
                "(fedsb never runs code from a data file)"
            )
        return found

    def persistent_load(self, pid: Any) -> Any:
        """Refuse persistent ids: a RadioML pickle never refers to outside objects."""
        raise PickleRefused("the pickle refers to outside objects (persistent ids)")


class _Bounded:
    """A file whose reads may not ask for more bytes than remain (claims checked first)."""

    def __init__(self, handle: BinaryIO, size: int) -> None:
        self.handle, self.size = handle, size

    def read(self, n: int = -1) -> bytes:
        left = self.size - self.handle.tell()
        if n > left:
            raise _Malformed(f"an item claims {n} bytes but only {left} remain in the file")
        return self.handle.read(n)

    def readline(self, limit: int = -1) -> bytes:
        return self.handle.readline(limit)

    def tell(self) -> int:
        return self.handle.tell()


def _checked(depth: int) -> int:
    if depth > MAX_DEPTH:
        raise PickleRefused(f"the pickle nests objects deeper than {MAX_DEPTH} levels")
    return depth


class _Cell:
    """One simulated stack object: how deeply it nests (shared, like the object, via the memo)."""

    __slots__ = ("depth",)

    def __init__(self, depth: int) -> None:
        self.depth = _checked(depth)


_MARK = _Cell(0)
_MUTATORS = frozenset({"APPEND", "APPENDS", "SETITEM", "SETITEMS", "ADDITEMS", "BUILD"})
_MARK_OBJ = pickletools.markobject


def _pop(stack: list[_Cell], before: list[Any]) -> list[_Cell]:
    """The operands an opcode consumes (to its mark, then the ones below the mark)."""
    taken: list[_Cell] = []
    count = len(before)
    if _MARK_OBJ in before:
        while stack and stack[-1] is not _MARK:
            taken.append(stack.pop())
        if not stack:
            raise _Malformed("no mark")
        stack.pop()
        count = before.index(_MARK_OBJ)
    if len(stack) < count or _MARK in stack[len(stack) - count :]:
        raise _Malformed("stack underflow")
    for _ in range(count):
        taken.append(stack.pop())
    return taken


def _step(op: Any, arg: Any, stack: list[_Cell], memo: dict[int, _Cell], ops: int) -> None:
    """Simulate one opcode on nesting depths only."""
    name = op.name
    if name == "MARK":
        stack.append(_MARK)
    elif name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
        index = len(memo) if name == "MEMOIZE" else arg
        if not stack or index > ops:  # picklers number memo slots in order
            raise _Malformed("memo index out of order")
        memo[index] = stack[-1]
    elif name in ("GET", "BINGET", "LONG_BINGET"):
        if arg not in memo:
            raise _Malformed("memo index unset")
        stack.append(memo[arg])
    elif name == "DUP":
        stack.extend(_pop(stack, op.stack_before) * 2)
    else:
        taken = _pop(stack, op.stack_before)
        if name in _MUTATORS:  # the container is the deepest operand; the rest go inside it
            container = taken.pop()
            inner = 1 + max((c.depth for c in taken), default=-1)
            container.depth = _checked(max(container.depth, inner))
            stack.append(container)
        elif op.stack_after:
            stack.append(_Cell(1 + max((c.depth for c in taken), default=-1)))


def prescan(handle: BinaryIO, size: int) -> None:
    """Check every length, memo index and nesting depth the pickle claims, allocating nothing.

    CPython's unpickler allocates a claimed ``BINBYTES8`` length before reading it, grows its
    memo to any claimed index, and hashes nested tuples recursively (a 2 MB pickle can
    segfault it): those claims are checked here, on a simulated stack of depths.
    """
    stack: list[_Cell] = []
    memo: dict[int, _Cell] = {}
    try:
        for ops, (op, arg, _pos) in enumerate(pickletools.genops(_Bounded(handle, size))):
            if ops > MAX_OPCODES:
                raise PickleRefused(f"the pickle has more than {MAX_OPCODES} instructions")
            if op.name == "FRAME" and arg > size - handle.tell():
                raise _Malformed(f"a frame claims {arg} bytes but the file is {size}")
            _step(op, arg, stack, memo, ops)
    except ValueError as exc:  # genops: unknown opcode, truncated argument
        raise _Malformed(" ".join(str(exc).split())) from None


def load_radioml_pickle(path: Path) -> Any:
    """The unpickled object; PickleRefused for what a RadioML file never holds.

    Any other exception means the file is not a readable pickle.
    """
    with open(path, "rb") as handle:
        prescan(handle, path.stat().st_size)
        handle.seek(0)
        return RadioMLUnpickler(handle).load()
