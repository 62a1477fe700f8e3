"""A second process that holds a cache lock (``files.exclusive``) for a while, for the tests of
commands that must wait for it."""

import subprocess
import sys
from pathlib import Path


def hold(lock: Path, marker: Path, seconds: float) -> subprocess.Popen:
    """Start a process that takes ``lock``, holds it ``seconds``, writes ``marker`` and lets
    go; returns once it holds the lock."""
    code = (f"import time\nfrom pathlib import Path\nfrom harness.core.files import exclusive\n"
            f"with exclusive(Path({str(lock)!r})):\n    print('held', flush=True)\n"
            f"    time.sleep({seconds})\n    Path({str(marker)!r}).write_text('done')\n")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder
