"""Tampering: write into everything a scoring keeps, from inside a run.

Looks for the reference cache (``reference_models/``), run records (``results/**.jsonl``),
leaderboards (``leaderboard*.csv``), other entries (``submissions/*.py``) and the harness's own
code, above the working directory and the harness package and in the temp folder; it appends to
every file and creates a file in every folder it finds (the harness's modules are only opened for
appending: that alone shows they could be rewritten). It prints how many writes worked.

To leave a developer's checkout usable should a sandbox be missing, each appended file is cut back
to its old length and each created file removed right after the write: the write itself (a new
modification time, a changed folder) is what a test sees.
"""

import glob
import os
import tempfile

import harness

TARGETS = ["reference_models", "results", "leaderboard*.csv", "submissions"]
PACKAGE = os.path.dirname(os.path.abspath(harness.__file__))


def _roots():
    roots = set()
    for start in (os.getcwd(), os.path.dirname(PACKAGE)):
        while True:
            roots.add(start)
            if os.path.dirname(start) == start:
                break
            start = os.path.dirname(start)
    for top in {"/tmp", tempfile.gettempdir(), os.path.expanduser("~")}:
        for depth in range(1, 5):
            roots.update(glob.glob(os.path.join(top, *["*"] * depth)))
    return roots


def _victims():
    files, folders = set(), set()
    for root in _roots():
        for target in TARGETS:
            for found in glob.glob(os.path.join(root, target)):
                if os.path.isfile(found):
                    files.add(found)
                    continue
                folders.add(found)
                for path in glob.glob(os.path.join(found, "**"), recursive=True):
                    (files if os.path.isfile(path) else folders).add(path)
    here = os.path.abspath(__file__)  # the entries filed next to this one
    files.update(p for p in glob.glob(os.path.join(os.path.dirname(here), "*.py")) if p != here)
    folders.add(PACKAGE)
    return sorted(files), sorted(folders)


def _append(path):
    try:
        size = os.path.getsize(path)
        with open(path, "ab") as handle:
            handle.write(b"\n# pwned\n")
        os.truncate(path, size)
        return True
    except OSError:
        return False


def _open_for_append(path):
    try:
        with open(path, "ab"):
            return True
    except OSError:
        return False


def _create(folder):
    path = os.path.join(folder, "pwned-by-writes_everywhere")
    try:
        with open(path, "w") as handle:
            handle.write("pwned\n")
        os.remove(path)
        return True
    except OSError:
        return False


FILES, FOLDERS = _victims()
MODULES = glob.glob(os.path.join(PACKAGE, "**", "*.py"), recursive=True)
DONE = [p for p in FILES if _append(p)] + [p for p in FOLDERS if _create(p)]
DONE += [p for p in MODULES if _open_for_append(p)]
TRIED = len(FILES) + len(FOLDERS) + len(MODULES)
print(f"writes_everywhere: {len(DONE)} of {TRIED} writes succeeded")
for path in DONE[:20]:
    print(f"  wrote {path}")


def unlearning(net, retain, forget, val):
    return net
