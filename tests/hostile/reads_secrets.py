"""Snooping: read what the competition never gave an entry.

Looks for the reference pool's files (``reference_models/*/``: the retrained models' outputs on
every forget example), run records, leaderboards and other entries' code (``*.py`` next to this
file, under the working directory, in any ``submissions/`` folder, anywhere in the checkout that
holds the harness package), above the working directory and the harness package and in the temp
folder, reads each one and prints how many of each kind it could read, with a few paths.
"""

import glob
import os
import tempfile

import harness

PACKAGE = os.path.dirname(os.path.abspath(harness.__file__))
HERE = os.path.abspath(__file__)


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


def _found():
    kinds = {"pool": set(), "records": set(), "leaderboards": set(), "code": set()}
    for root in _roots():
        kinds["pool"].update(glob.glob(os.path.join(root, "reference_models", "*", "*")))
        kinds["records"].update(glob.glob(os.path.join(root, "results", "**", "*.jsonl"),
                                          recursive=True))
        kinds["leaderboards"].update(glob.glob(os.path.join(root, "leaderboard*.csv")))
        kinds["code"].update(glob.glob(os.path.join(root, "submissions", "*.py")))
    kinds["code"].update(glob.glob(os.path.join(os.path.dirname(HERE), "*.py")))
    kinds["code"].update(glob.glob(os.path.join(os.getcwd(), "**", "*.py"), recursive=True))
    checkout = os.path.dirname(PACKAGE)  # the repository: everything but the harness itself
    for path in glob.glob(os.path.join(checkout, "**", "*.py"), recursive=True):
        if not path.startswith(PACKAGE + os.sep) and f"{os.sep}." not in path[len(checkout):]:
            kinds["code"].add(path)
    kinds["code"].discard(HERE)
    return kinds


def _readable(path):
    try:
        with open(path, "rb") as handle:
            handle.read()
        return True
    except OSError:
        return False


for kind, paths in _found().items():
    read = sorted(p for p in paths if os.path.isfile(p) and _readable(p))
    print(f"reads_secrets: {kind}: {len(read)} files read {read[:3]}")


def unlearning(net, retain, forget, val):
    return net
