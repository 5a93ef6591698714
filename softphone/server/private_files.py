"""Files and directories only their owner may read, whatever the process umask.

The server's database holds password and token hashes; the TUI's log names parties and servers.
Modes are set at creation (no window where another user could open the file); a file we own
that an older version left readable is made private too.
"""

from __future__ import annotations

import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """Create `path` (and missing parents) if needed; a directory made here is 0700.

    An existing directory keeps its mode (it may be the user's home, or /tmp); parents keep
    the ordinary mode too: they are shared locations such as ~/.local/share.
    """
    if not path.is_dir():
        path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        os.chmod(path, DIR_MODE)  # mkdir's mode is masked by the umask
    return path


def private_file(path: Path) -> Path:
    """Create `path` empty if missing, without following a symlink; it ends up 0600."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, FILE_MODE)
    try:
        if os.fstat(fd).st_uid == os.getuid():
            os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    return path
