"""Atomic file writing: a killed process never leaves a half-written artefact behind."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .errors import TfnasError, named


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path``, fsync it, then rename it over."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:  # a place that cannot be written, found only now (a disk full)
        raise TfnasError(f"{target}: cannot be written ({exc.strerror or exc}).") from None
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would outlive the rename
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


def read_text(path: str | os.PathLike[str], kind: str, error: type[TfnasError]) -> str:
    """A text file's contents; a missing or unreadable file is one sentence of ``error``."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: no such {kind}.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: cannot be read ({exc}).") from None


class DuplicateKey(ValueError):
    """A JSON object or YAML mapping that names one key twice (args[0]: the key)."""


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object from its pairs, refusing a key given twice (``object_pairs_hook``)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKey(key)
        out[key] = value
    return out


def read_json(path: str | os.PathLike[str], kind: str, error: type[TfnasError]) -> Any:
    """Parse a JSON file, turning every way it can fail into one sentence of ``error``."""
    path = Path(path)
    text = read_text(path, kind, error)
    try:
        return json.loads(text, object_pairs_hook=unique_keys)
    except DuplicateKey as exc:
        raise error(
            f"{path}: holds the key {exc.args[0]!r} twice in one object; JSON keeps the last "
            "silently, tfnas refuses to guess: keep one."
        ) from None
    except RecursionError:
        raise error(f"{path}: nests deeper than any {kind} does.") from None
    except json.JSONDecodeError as exc:
        raise error(
            f"{path}: is not valid JSON, perhaps truncated (line {exc.lineno}, column "
            f"{exc.colno}: {exc.msg})."
        ) from None


def check_output(path: str | os.PathLike[str], setting: str, kind: str) -> Path:
    """Refuse, before any work, an output ``path`` (given as ``setting``) that cannot become
    a ``kind`` ("file" or "directory"): a directory where a file goes, a file where a
    directory goes, or a place that cannot be written."""
    path = Path(path)
    flag = named(setting)
    if kind == "file" and path.is_dir():
        raise TfnasError(f"{flag} {path}: is a directory; give the name of a file to write.")
    if kind == "directory" and path.exists() and not path.is_dir():
        raise TfnasError(f"{flag} {path}: is a file, not a directory; choose another {flag}.")
    parent = path.parent if kind == "file" or not path.exists() else path
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise TfnasError(f"{flag} {path}: cannot be made, since {parent} is a file.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise TfnasError(f"{flag} {path}: cannot be written ({parent} is not writable).")
    return path


def json_object(line: str) -> dict[str, Any] | None:
    """The JSON object a line holds, or None (another kind of line, or one cut short)."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        value = json.loads(line)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
