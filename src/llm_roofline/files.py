"""Writing output files whole or not at all, checking their destinations before any work, and strict JSON."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from .errors import UserError


def check_output_path(path: str | Path, option: str, suffixes: Iterable[str]) -> Path:
    """Refuse a destination that cannot be written, before any measurement or fit starts: a wrong suffix, a
    directory, a missing parent, or a parent where no file can be created (probed by creating and removing a
    temporary file there, which also catches read-only mounts and pseudo-filesystems such as /proc)."""
    suffixes = tuple(suffixes)
    text = str(path)
    if not text.strip():
        raise UserError(f"{option} needs a file name, got an empty one")
    path = Path(text).expanduser()
    if path.suffix.lower() not in suffixes:
        raise UserError(f"{option} {text!r} must end in {', '.join(suffixes)}")
    if path.is_dir():
        raise UserError(f"{option} {text!r} is a directory; give a file name inside it, e.g. "
                        f"{str(path / ('out' + suffixes[0]))!r}")
    parent = path.parent
    if not parent.is_dir():
        raise UserError(f"{option} {text!r}: directory {str(parent)!r} does not exist")
    if path.exists() and not os.access(path, os.W_OK):
        raise UserError(f"{option} {text!r} exists and is not writable")
    try:
        fd, probe = tempfile.mkstemp(prefix=".llm-roofline-", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UserError(f"{option} {text!r}: cannot write in {str(parent)!r} ({exc.strerror or exc})") from None
    return path


def write_atomically(path: str | Path, write: Callable[[str], None]) -> Path:
    """Let `write` fill a temporary file beside `path`, then rename it over `path`: a failure midway leaves
    neither a half-written file nor a stray temporary one."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(suffix=path.suffix, dir=path.parent.resolve())
    except OSError as exc:
        raise UserError(f"cannot write {str(path)!r} ({exc.strerror or exc})") from None
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes owner-only files; outputs get the usual permissions
        os.replace(tmp, path)
    except OSError as exc:
        raise UserError(f"cannot write {str(path)!r} ({exc.strerror or exc})") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def strict_json_data(data, _path: str = "", _nulled: list | None = None):
    """A copy of `data` in which every NaN or infinite float is None (JSON has neither), and the dotted paths of
    the values so replaced. Tuples become lists, as json.dumps would make them."""
    nulled = [] if _nulled is None else _nulled
    if isinstance(data, float):
        if math.isfinite(data):
            return data, nulled
        nulled.append(_path or "value")
        return None, nulled
    if isinstance(data, dict):
        return {k: strict_json_data(v, f"{_path}.{k}" if _path else str(k), nulled)[0] for k, v in data.items()}, \
            nulled
    if isinstance(data, (list, tuple)):
        return [strict_json_data(v, f"{_path}[{i}]", nulled)[0] for i, v in enumerate(data)], nulled
    if hasattr(data, "item") and callable(data.item) and not isinstance(data, (str, bytes)):  # numpy scalars
        return strict_json_data(data.item(), _path, nulled)
    return data, nulled


def dumps_strict(data, **dump_args) -> str:
    """json.dumps that never writes NaN or Infinity: such a quantity is null, and a top-level object says which
    ones in its `notes` (a quantity that cannot be bounded is reported as unbounded, not as a number)."""
    clean, nulled = strict_json_data(data)
    if nulled and isinstance(clean, dict):
        notes = clean.get("notes") if isinstance(clean.get("notes"), list) else []
        clean["notes"] = notes + [f"not bounded (null): {', '.join(nulled[:20])}"]
    return json.dumps(clean, default=str, allow_nan=False, **dump_args)


def write_json(path: str | Path, data, **dump_args) -> Path:
    text = dumps_strict(data, **dump_args) + "\n"
    return write_atomically(path, lambda tmp: Path(tmp).write_text(text))


def write_csv(path: str | Path, records: list[dict]) -> Path:
    """Every record as one CSV row under the first record's keys, written atomically."""
    import csv

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as out:
            w = csv.DictWriter(out, fieldnames=list(records[0]))
            w.writeheader()
            w.writerows(records)

    return write_atomically(path, write)
