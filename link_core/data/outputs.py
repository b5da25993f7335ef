"""Writing a command's outputs so that a failure changes nothing: files atomically (temp name
+ rename, the temp file removed when the write fails, e.g. on a full disk), a folder's files
staged beside it and moved in only once all of them are written, and ``--out`` paths checked
before any work. Problems are :class:`~link_core.errors.OutputError` naming the path."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from link_core.errors import OutputError


def _blocking_file(path: Path) -> Path | None:
    """The nearest existing ancestor of ``path`` when it is not a folder (so ``path`` cannot
    be made, for root as for anyone), else None."""
    for parent in path.parents:
        if parent.exists():
            return None if parent.is_dir() else parent
    return None


def check_out_folder(path: str | Path, flag: str = "--out") -> Path:
    """``path`` is a folder or can be made one: else an OutputError naming it."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{flag}: {path} exists and is not a folder")
    blocker = _blocking_file(path)
    if blocker is not None:
        raise OutputError(f"{flag}: cannot make the folder {path}: {blocker} is not a folder")
    return path


def check_out_file(path: str | Path, flag: str = "--out") -> Path:
    """``path`` is a file or can be written as one: else an OutputError naming it."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{flag}: {path} is a folder, expected a file name")
    blocker = _blocking_file(path)
    if blocker is not None:
        raise OutputError(f"{flag}: cannot write {path}: {blocker} is not a folder")
    return path


def _failed(path: Path, e: OSError) -> OutputError:
    return OutputError(f"cannot write {path} ({e.strerror or e})")


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temp file and a rename: a reader sees the old file or
    the new one; a failed write is an OutputError naming ``path`` and leaves no temp file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError as e:
        _remove(tmp)
        raise _failed(path, e) from None
    return path


def _remove(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:  # e.g. under a file: then it was never made
        pass


@contextmanager
def staged_folder(out: str | Path, flag: str = "--out") -> Iterator[Path]:
    """A temp folder beside ``out`` to write a command's files into. When the block ends
    well they move into ``out`` (made if missing; a file of the same name is replaced, one
    rename each); when it fails (a full disk) the temp folder goes and ``out`` is as it was."""
    out = check_out_folder(out, flag)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    except OSError as e:
        raise _failed(out, e) from None
    try:
        try:
            yield tmp
        except OutputError as e:  # name the file as it would have been, say what is kept
            where = str(e).replace(str(tmp), str(out))
            raise OutputError(f"{where}; nothing in {out} was changed") from None
        out.mkdir(exist_ok=True)
        for src in sorted(p for p in tmp.rglob("*") if p.is_file()):
            dest = out / src.relative_to(tmp)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dest)
    except OSError as e:
        raise _failed(out, e) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
