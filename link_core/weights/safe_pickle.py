"""Read the tensors out of an NVIDIA StyleGAN2-ADA / EG3D pickle without running it.

Their ``network-snapshot.pkl`` files are plain pickles whose networks are "persistent"
objects: each one is rebuilt by ``torch_utils.persistence._reconstruct_persistent_obj``
from a record holding the module's *source code*, its class name and its ``__dict__``
state; unpickling such a file normally imports that source and runs it. Here every global
the pickle names is looked up in a short allow-list of stand-ins that only build plain
data: a persistent object becomes a :class:`Record` (class name + state), a torch module
pickled by ``copyreg`` likewise, a tensor storage is read by torch's weights-only loader
(``weights_only=True``), and anything else stops the load with an error naming it. Nothing
from the file is imported or executed.
"""

from __future__ import annotations

import collections
import functools
import io
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from link_core.errors import CheckpointError


class Record:
    """A reconstructed object as data: its class name (never resolved) and its state."""

    class_name = "?"

    def __init__(self, class_name: str | None = None, state: dict | None = None, *_: Any) -> None:
        if isinstance(class_name, str):
            self.class_name = class_name
        self.state: dict[str, Any] = dict(state or {}) if isinstance(state, dict) else {}

    def __setstate__(self, state: Any) -> None:  # pickle's BUILD
        if isinstance(state, tuple) and len(state) == 2:  # (dict state, slot state)
            state = {**(state[0] or {}), **(state[1] or {})}
        own = self.__dict__.setdefault("state", {})
        own.update(state if isinstance(state, dict) else {"state": state})

    def __repr__(self) -> str:
        return f"Record({self.class_name!r}, {sorted(self.__dict__.get('state', {}))})"

    def tensors(self, prefix: str = "") -> Iterator[tuple[str, torch.Tensor]]:
        """``(name, tensor)`` like ``nn.Module.state_dict()``: parameters, buffers, children."""
        state = self.__dict__.get("state", {})
        for key in ("_parameters", "_buffers"):
            for name, value in (state.get(key) or {}).items():
                if isinstance(value, torch.Tensor):
                    yield prefix + name, value
        for name, child in (state.get("_modules") or {}).items():
            if isinstance(child, Record):
                yield from child.tensors(f"{prefix}{name}.")

    def kwargs(self) -> dict[str, Any]:
        """The constructor keyword arguments persistence stored with the object."""
        state = self.__dict__.get("state", {})
        return dict(state.get("_init_kwargs") or state.get("init_kwargs") or {})


@functools.cache
def _record_class(qualname: str) -> type[Record]:
    """A stand-in class for a class the pickle names: a :class:`Record` with that name (pickle
    calls or ``__new__``s it; nothing of the real class is imported)."""
    return type("Record", (Record,), {"class_name": qualname})


def _persistent_obj(meta: dict[str, Any]) -> Record:
    # torch_utils.persistence: meta = {type, version, module_src, class_name, state}.
    # module_src is source code: it is dropped here, never compiled.
    if not isinstance(meta, dict) or meta.get("type") != "class":
        raise CheckpointError("persistent object: expected a class record")
    state = meta.get("state") or {}
    return Record(str(meta.get("class_name", "?")), dict(state))


def _copyreg_reconstructor(cls: Any, base: Any, state: Any) -> Record:
    if not (isinstance(cls, type) and issubclass(cls, Record)):
        raise CheckpointError("copyreg record of an unexpected class")
    return cls()


def _storage_from_bytes(data: bytes) -> Any:
    return torch.load(io.BytesIO(data), weights_only=True)


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    # Protocol-2 pickles spell bytes as _codecs.encode(str, 'latin1').
    if encoding != "latin1" or not isinstance(text, str):
        raise CheckpointError("bytes record with an unexpected encoding")
    return text.encode("latin1")


class EasyDict(dict):
    """Stand-in for ``dnnlib.util.EasyDict`` (a dict subclass their configs and kwargs use).

    Pickle rebuilds it with NEWOBJ (``cls.__new__(cls)``), then SETITEMS and maybe BUILD;
    a plain dict subclass takes all three and stays a dict for every reader. Attribute
    access is not offered: nothing here needs it, and BUILD state lands in ``__dict__``.
    """


# Scalar kinds a snapshot may hold (bool, ints, floats, complex): never objects or voids,
# whose bytes could stand for pointers or nested records.
_SCALAR_KINDS = frozenset("biufc")


def _numpy_dtype(spec: Any, align: Any = False, copy: Any = False) -> np.dtype:
    # numpy pickles a dtype as numpy.dtype('f8', False, True) + BUILD(state); only a type
    # code string is accepted, and BUILD (dtype.__setstate__) sets byte order etc. in C.
    if not isinstance(spec, str):
        raise CheckpointError(f"numpy dtype from {type(spec).__name__} (expected a type code)")
    return np.dtype(spec, align=bool(align), copy=bool(copy))


def _numpy_scalar(dtype: Any, data: Any = None) -> np.generic:
    """``numpy._core.multiarray.scalar(dtype, bytes)`` as a plain numeric numpy scalar: the
    bytes are read with ``np.frombuffer`` for a checked numeric dtype, nothing else."""
    if not isinstance(dtype, np.dtype) or dtype.kind not in _SCALAR_KINDS or dtype.hasobject:
        raise CheckpointError(f"numpy scalar of dtype {dtype!r} (only numbers are read)")
    if not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise CheckpointError(f"numpy scalar: {dtype} needs {dtype.itemsize} bytes")
    return np.frombuffer(data, dtype=dtype, count=1)[0]


def _numpy_reconstruct(cls: Any, shape: Any, dtype: Any) -> np.ndarray:
    return np.ndarray.__new__(np.ndarray, shape, dtype)


# module -> name -> stand-in. Classes a pickle may name for data only (torch.nn modules,
# persistent network classes) come back as Record classes (_record_class).
_ALLOWED: dict[str, dict[str, Any]] = {
    "torch_utils.persistence": {"_reconstruct_persistent_obj": _persistent_obj},
    "copyreg": {"_reconstructor": _copyreg_reconstructor},
    "torch._utils": {
        "_rebuild_tensor_v2": torch._utils._rebuild_tensor_v2,
        "_rebuild_parameter": torch._utils._rebuild_parameter,
    },
    "torch.storage": {"_load_from_bytes": _storage_from_bytes},
    "collections": {"OrderedDict": collections.OrderedDict},
    "_codecs": {"encode": _latin1_bytes},
    "builtins": {"object": object, "set": set, "frozenset": frozenset},
    "dnnlib.util": {"EasyDict": EasyDict},
    "dnnlib": {"EasyDict": EasyDict},
    # numpy 1.x files name numpy.core, numpy 2.x numpy._core (e.g. bias_act's gains).
    "numpy.core.multiarray": {"_reconstruct": _numpy_reconstruct, "scalar": _numpy_scalar},
    "numpy._core.multiarray": {"_reconstruct": _numpy_reconstruct, "scalar": _numpy_scalar},
    "numpy": {"ndarray": np.ndarray, "dtype": _numpy_dtype},
}
# Modules whose *classes* may be named (as plain records) but never imported.
_RECORD_MODULES = ("torch.nn.modules.", "training.", "torch_utils.")


class _SafeUnpickler(pickle.Unpickler):
    def __init__(self, file: Any, where: str):
        super().__init__(file)
        self.where = where

    def find_class(self, module: str, name: str) -> Any:
        allowed = _ALLOWED.get(module, {})
        if name in allowed and allowed[name] is not None:
            return allowed[name]
        if module.startswith(_RECORD_MODULES) and name[:1].isupper():
            return _record_class(f"{module}.{name}")
        raise CheckpointError(
            f"{self.where}: refuses to load global '{module}.{name}' "
            "(not a tensor, a network record or plain data; nothing was run)"
        )

    def persistent_load(self, pid: Any) -> Any:
        raise CheckpointError(f"{self.where}: unexpected persistent id {pid!r} (not a pickle)")


def load_nvidia_pickle(path: str | Path) -> dict[str, Any]:
    """The top-level dict of an NVIDIA snapshot (``G``, ``D``, ``G_ema`` as :class:`Record`)."""
    path = Path(path)
    if path.exists() and not path.is_file():
        raise CheckpointError(f"{path}: not a regular file (a folder, FIFO or device)")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read ({e.strerror})") from e
    if data[:2] == b"PK":
        raise CheckpointError(f"{path}: a zip (torch.save) file, not an NVIDIA pickle")
    try:
        obj = _SafeUnpickler(io.BytesIO(data), str(path)).load()
    except CheckpointError:
        raise
    except Exception as e:  # truncated or not a pickle at all
        raise CheckpointError(f"{path}: not a readable pickle ({type(e).__name__}: {e})") from e
    if not isinstance(obj, dict) or not any(isinstance(v, Record) for v in obj.values()):
        raise CheckpointError(f"{path}: expected a dict with network records (G, D, G_ema)")
    return obj
