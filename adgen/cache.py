"""A content-addressed cache of generated text, so that `adgen check`, `build`,
`emit`, `render` and `load` skip derivation when nothing that decides the
output has changed.

Key: sha256 of the generator's fingerprint (the bytes of every file of the
adgen package and its templates; the versions of black, sympy, jinja2, mpmath
and Python's minor version) and the op's request as the caller gave it
(expression text, name, inputs, outputs, params, domains, options, the
regenerate line, the output folders as the regenerate line names them and the
module's folder from the test's; see api._Given). Any change to any of them is
another key, so an entry can never be served for a generator or request it was
not made by. Nothing is parsed to make a key, so a hit imports none of sympy,
black or jinja2; an invalid request is never stored, so it never hits.

Where: `ADGEN_CACHE_DIR` if set, else the platform's user cache folder
(`$XDG_CACHE_HOME/adgen` or `~/.cache/adgen` on Linux); never inside the
user's project. `ADGEN_CACHE=0` turns it off.

Entries are written atomically (temp file + rename) and carry the sha256 of
their content: a truncated, corrupt or unreadable entry is a miss (and is
overwritten), never trusted. A missing or read-only cache folder never fails a
command; the cache is then simply not used.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

CACHE_DIR_ENV = "ADGEN_CACHE_DIR"
CACHE_ENV = "ADGEN_CACHE"
_FORMAT = b"adgen-cache-1"  # first word of every entry; a new layout gets a new word
_DEPENDENCIES = ("black", "sympy", "jinja2", "mpmath")


@dataclass(frozen=True)
class Fingerprint:
    """What identifies the generator: a digest of its files and dependency versions."""

    digest: str  # sha256 hex
    stats: tuple[tuple[str, int, int], ...]  # (path, mtime_ns, size) of each file when hashed

    def files_unchanged(self) -> bool:
        """Whether every hashed file still has the size and mtime it had when hashed
        (if not, the code running may not be the code hashed: store nothing)."""
        for path, mtime_ns, size in self.stats:
            try:
                status = os.stat(path)
            except OSError:
                return False
            if (status.st_mtime_ns, status.st_size) != (mtime_ns, size):
                return False
        return True


def generator_files() -> list[Path]:
    """adgen's own files (source, and templates inside a wheel) and, in a source
    checkout, the templates beside the package: everything whose bytes decide
    the output. A stray file only costs misses, never a stale hit."""
    package = Path(__file__).resolve().parent
    files = [p for p in package.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    checkout_templates = package.parent / "templates"
    if not (package / "templates").is_dir() and checkout_templates.is_dir():
        files += [p for p in checkout_templates.rglob("*") if p.is_file()]
    return sorted(files)


def dependency_versions() -> dict[str, str]:
    """Versions of Python (major.minor) and of the libraries that shape the text."""
    versions = {"python": f"{sys.implementation.name}-{sys.version_info[0]}.{sys.version_info[1]}"}
    for name in _DEPENDENCIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def fingerprint(files: Sequence[Path], versions: Mapping[str, str]) -> Fingerprint:
    """Hash the files' bytes (with their names, relative to their common folder) and
    the versions. Raises OSError if a file cannot be read."""
    digest = hashlib.sha256()
    digest.update(json.dumps(dict(versions), sort_keys=True).encode())
    root = Path(os.path.commonpath([str(f) for f in files])) if files else Path()
    stats = []
    for path in files:
        status = os.stat(path)
        content = path.read_bytes()
        name = path.relative_to(root).as_posix() if root in path.parents else path.name
        digest.update(b"\0%s\0%d\0" % (name.encode(), len(content)))
        digest.update(content)
        stats.append((str(path), status.st_mtime_ns, status.st_size))
    return Fingerprint(digest.hexdigest(), tuple(stats))


def _generator_fingerprint() -> Fingerprint | None:
    try:
        return fingerprint(generator_files(), dependency_versions())
    except OSError:
        return None  # an unreadable install: no cache rather than a wrong one


# Hashed when adgen is imported (api imports this module at once, the stages
# only on a miss), so the fingerprint describes the code this process runs; an
# edit made later is caught by `files_unchanged` before anything is stored.
GENERATOR = _generator_fingerprint()


def default_folder() -> Path | None:
    """The cache folder: ADGEN_CACHE_DIR, else the platform's user cache folder."""
    explicit = os.environ.get(CACHE_DIR_ENV)
    if explicit:
        return Path(explicit)
    try:
        home = Path.home()
    except RuntimeError:  # no HOME and no password entry
        home = None
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA")
        return Path(base) / "adgen" / "Cache" if base else None
    if sys.platform == "darwin":
        return home / "Library" / "Caches" / "adgen" if home else None
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):  # the XDG spec says to ignore a relative path
        return Path(xdg) / "adgen"
    return home / ".cache" / "adgen" if home else None


def enabled() -> bool:
    """False when ADGEN_CACHE is 0, false, no or off."""
    return os.environ.get(CACHE_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


class TextCache:
    """Entries of generated text under `folder`, one file per key."""

    def __init__(self, folder: Path | None, generator: Fingerprint | None = None) -> None:
        self.folder = folder  # None: a cache that never hits and stores nothing
        self.generator = generator

    def key(self, request: Mapping[str, Any]) -> str | None:
        """The key of `request` (JSON-able values) under this generator; None when disabled."""
        if self.folder is None or self.generator is None:
            return None
        text = json.dumps(
            {"generator": self.generator.digest, "request": request},
            sort_keys=True,
            ensure_ascii=True,
            allow_nan=False,
        )
        return hashlib.sha256(text.encode()).hexdigest()

    def get(self, key: str | None) -> dict[str, Any] | None:
        """The payload stored under `key`, or None when absent, unreadable or corrupt."""
        if key is None or self.folder is None:
            return None
        try:
            data = self._path(key).read_bytes()
            header, _, body = data.partition(b"\n")
            word, stored_key, checksum = header.split(b" ")
            if (
                word != _FORMAT
                or stored_key.decode() != key
                or hashlib.sha256(body).hexdigest() != checksum.decode()
            ):
                return None
            payload = json.loads(body.decode("utf-8"))
        except (OSError, ValueError):  # missing, unreadable, truncated, not UTF-8/JSON
            return None
        return payload if isinstance(payload, dict) else None

    def put(self, key: str | None, payload: Mapping[str, Any]) -> bool:
        """Store `payload` under `key` atomically; return whether it was stored.
        Never raises for a missing, read-only or full cache folder."""
        if key is None or self.folder is None or self.generator is None:
            return False
        if not self.generator.files_unchanged():
            return False  # adgen was edited while running: the key may not match the code
        body = json.dumps(payload, sort_keys=True, ensure_ascii=False).encode("utf-8")
        header = b"%s %s %s\n" % (_FORMAT, key.encode(), hashlib.sha256(body).hexdigest().encode())
        path = self._path(key)
        temporary = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(header + body)
            os.replace(temporary, path)
            return True
        except OSError:
            if temporary is not None:
                try:
                    os.unlink(temporary)
                except OSError:
                    pass
            return False

    def _path(self, key: str) -> Path:
        assert self.folder is not None
        return self.folder / "v1" / key[:2] / key[2:]


def default_cache() -> TextCache:
    """The cache the environment asks for (read at each call, so tests can set it)."""
    if not enabled():
        return TextCache(None)
    return TextCache(default_folder(), GENERATOR)
