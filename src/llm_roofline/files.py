"""Writing output files whole or not at all."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def write_atomically(path: str | Path, write: Callable[[str], None]) -> Path:
    """Let `write` fill a temporary file beside `path`, then rename it over `path`: a failure midway leaves
    neither a half-written file nor a stray temporary one."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(suffix=path.suffix, dir=path.parent.resolve())
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes owner-only files; outputs get the usual permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_json(path: str | Path, data, **dump_args) -> Path:
    def write(tmp: str) -> None:
        Path(tmp).write_text(json.dumps(data, default=str, **dump_args) + "\n")

    return write_atomically(path, write)
