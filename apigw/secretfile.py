"""Files that hold secrets (the demo admin password, the demo API key) are created 0600.

``Path.write_text`` then ``chmod`` leaves a window in which the secret is readable under the
umask's mode (0644 usually), and keeps a wider mode of a file that exists already; this opens the
file with 0600 from the start and narrows an existing one before writing.
"""

from __future__ import annotations

import os
from pathlib import Path


def write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
    finally:
        os.close(fd)
