"""SHA-256 digests, the names of every artifact: bytes, streams, files, and many files at once.

The compiled twin (``_digest_c``: SHA-NI or portable C, GIL released while hashing and reading)
is used unless ``MAELSTROM_NO_EXTENSIONS`` is set to anything but ``""`` or ``"0"``, or it fails
to import; then the hashlib twin (``_digest_py``) is. Both behave the same, errors included.
``IMPLEMENTATION`` says which one was picked.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

__all__ = [
    "DIGEST_SIZE",
    "IMPLEMENTATION",
    "Sha256",
    "from_hex",
    "sha256_bytes",
    "sha256_file",
    "sha256_files",
    "to_hex",
]

DIGEST_SIZE = 32

if TYPE_CHECKING:
    # Type checkers see the pure twin, whose signatures are real Python.
    from maelstrom_core._digest_py import Sha256 as Sha256
    from maelstrom_core._digest_py import sha256_bytes as sha256_bytes
    from maelstrom_core._digest_py import sha256_file as sha256_file
    from maelstrom_core._digest_py import sha256_files as sha256_files

    IMPLEMENTATION: str
elif os.environ.get("MAELSTROM_NO_EXTENSIONS", "") not in ("", "0"):
    from maelstrom_core._digest_py import Sha256, sha256_bytes, sha256_file, sha256_files

    IMPLEMENTATION = "py"
else:
    try:
        from maelstrom_core._digest_c import Sha256, sha256_bytes, sha256_file, sha256_files
    except ImportError:
        from maelstrom_core._digest_py import Sha256, sha256_bytes, sha256_file, sha256_files

        IMPLEMENTATION = "py"
    else:
        IMPLEMENTATION = "c"

_HEX_DIGEST = re.compile(r"[0-9a-fA-F]{64}")


def to_hex(digest: bytes) -> str:
    """The 64 lowercase hex digits of a 32-byte digest."""
    if not isinstance(digest, bytes | bytearray) or len(digest) != DIGEST_SIZE:
        raise ValueError(f"not a SHA-256 digest (32 bytes): {_shorten(digest)}")
    return digest.hex()


def from_hex(text: str) -> bytes:
    """The 32-byte digest written as ``text``: exactly 64 hex digits, either case."""
    if not isinstance(text, str) or _HEX_DIGEST.fullmatch(text) is None:
        raise ValueError(f"not a SHA-256 digest (64 hex digits): {_shorten(text)}")
    return bytes.fromhex(text)


def _shorten(value: object) -> str:
    shown = repr(value)
    return shown if len(shown) <= 80 else f"{shown[:77]}..."
