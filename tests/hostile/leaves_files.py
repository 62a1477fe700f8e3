"""Leaving files for later runs: find every folder a run can write to outside its scratch.

Walks the file system (three levels deep; not ``/proc``, ``/sys``, or ``/tmp`` and ``/dev/shm``,
the scratch that is emptied after each run) and tries to create (and at once remove) a file in
each folder; then leaves a small marker in ``/dev/shm``, the shared-memory folder every Linux
process may write to, and reports, at import, the markers that earlier runs (of any submission)
left there. A writable
place outside the scratch that outlives a run is a channel between runs, and without a size
limit a way to exhaust the machine's memory.
"""

import glob
import os

MARKER = "left-by-a-run"
SKIPPED = ("/proc", "/sys", "/tmp", "/dev/shm")


def _writable_folders():
    found = []
    for top, folders, _ in os.walk("/"):
        if top.startswith(SKIPPED) or top.count(os.sep) >= 3:
            folders[:] = []
        if top.startswith(SKIPPED):
            continue
        probe = os.path.join(top, f".{MARKER}-probe-{os.getpid()}")
        try:
            with open(probe, "w"):
                pass
            os.remove(probe)
            found.append(top)
        except OSError:
            pass
    return found


print(f"left by earlier runs: {len(glob.glob(f'/dev/shm/{MARKER}-*'))}")
print(f"writable outside the scratch: {_writable_folders()}")
try:
    with open(f"/dev/shm/{MARKER}-{os.getpid()}", "w") as handle:
        handle.write("hello, next run\n")
except OSError:
    pass


def unlearning(net, retain, forget, val):
    return net
