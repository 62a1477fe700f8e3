"""The OS sandbox around the processes that run submission code (bubblewrap).

A sandboxed runner process sees, read-only, only what running Python and torch needs: the system
directories, the Python installation and its packages, and the ``harness`` package. Everything
else on the machine (home directories, the checkout, ``reference_models/``, ``results/``, the
leaderboard, the report, the submissions folder, data folders, other users' files) is not there.
The writable places are ``/tmp``, a size-limited tmpfs that holds the runs' scratch
directories, and ``/dev/shm`` (smaller, for DataLoader workers); both are emptied after every
run and, being memory, count against the machine's RAM. Everything else, the sandbox's own root
included, is read-only. The network is a namespace of its own with nothing in it (no route
anywhere, not even to the host's 127.0.0.1), and the process IDs too, so a run sees no process
outside its sandbox, and when the runner process ends, every process left in the sandbox is
killed.

The sandbox is defence in depth: the separation of processes (``harness.execution.runner``) is what
makes a forged score impossible without it. ``--sandbox auto`` (the default) uses it where ``bwrap``
is installed and says once where it is not; ``on`` requires it; ``off`` runs without it.
"""

from __future__ import annotations

import functools
import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

MODES = ("auto", "on", "off")
BWRAP = "bwrap"
SCRATCH = "/tmp"  # inside the sandbox: the writable place, with SHARED_MEMORY
SCRATCH_BYTES = 2**30  # the scratch tmpfs's size: a ResNet checkpoint or twenty fit easily
SHARED_MEMORY = "/dev/shm"  # DataLoader workers pass batches through it
SHARED_MEMORY_BYTES = 2**29
SYSTEM_DIRECTORIES = ("usr", "etc", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "sys")
_PACKAGE = Path(__file__).resolve().parents[1]  # the ``harness`` package


class SandboxUnavailable(RuntimeError):
    """``--sandbox on`` where bubblewrap is not installed or cannot start."""


def bwrap_path() -> str | None:
    return shutil.which(BWRAP)


def resolve(mode: str) -> bool:
    """Whether runs are sandboxed for ``mode``: ``on`` raises ``SandboxUnavailable`` without
    bubblewrap, ``auto`` sandboxes where it is installed, ``off`` never."""
    if mode not in MODES:
        raise ValueError(f"sandbox must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "off":
        return False
    problem = unavailable_reason()
    if problem is None:
        return True
    if mode == "on":
        raise SandboxUnavailable(f"--sandbox on: {problem}; or pass --sandbox off")
    return False


def unavailable_reason() -> str | None:
    """Why the sandbox cannot be used here (not installed, or the system does not let bwrap
    make its namespaces), or None."""
    binary = bwrap_path()
    if binary is None:
        return ("bubblewrap (`bwrap`) is not installed; install Debian's `bubblewrap` package "
                "(apt-get install bubblewrap)")
    return _start_problem(binary)


@functools.cache
def _start_problem(binary: str) -> str | None:
    """bwrap's error starting an empty sandbox like the runner's, or None (once per process)."""
    try:
        trial = subprocess.run([*command("cpu"), "/bin/true"], capture_output=True, text=True,
                               timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"{binary} could not start a sandbox ({error})"
    if trial.returncode != 0:
        lines = trial.stderr.strip().splitlines()
        return f"{binary} could not start a sandbox: {lines[-1] if lines else trial.returncode}"
    return None


def unavailable_notice() -> str:
    """The one line ``--sandbox auto`` prints where no sandbox can be used."""
    return (
        f"no sandbox ({unavailable_reason()}): submissions run with your permissions and "
        "network; their scores and times stay out of their reach either way"
    )


def _visible_roots() -> list[Path]:
    """What the runner needs to see besides the system directories: the Python installation,
    its package folders and the harness package (which may live inside a checkout that is
    otherwise hidden). A folder on ``sys.path`` that is the working directory or holds it is
    left out: that is the user's checkout, not an installation."""
    cwd = Path.cwd().resolve()
    roots = {Path(sys.prefix), Path(sys.base_prefix), Path(sys.exec_prefix), _PACKAGE,
             Path(sys.executable).resolve().parent.parent}
    for entry in sys.path:
        path = Path(entry or ".").resolve()
        if path.exists() and not cwd.is_relative_to(path) and "site-packages" in path.parts:
            roots.add(path)
    resolved = sorted({r.resolve() for r in roots if r.exists()})
    # a root inside another root is bound with it
    return [r for r in resolved if not any(r != o and r.is_relative_to(o) for o in resolved)]


def _visible(path: Path) -> bool:
    return any(path.is_relative_to(Path("/") / n) for n in SYSTEM_DIRECTORIES) or any(
        path.is_relative_to(root) for root in _visible_roots())


def module_source(name: str) -> tuple[Path, list[Path]] | None:
    """For a module the runner must import that is neither installed nor part of the harness
    (a task class defined in a user's file): the folder to put on its path and the files to show
    it (the module's file and its packages' ``__init__.py``, not their neighbours). None when
    the sandbox sees it already."""
    import sys

    module = sys.modules.get(name)
    if module is None or getattr(module, "__file__", None) is None:
        return None
    path = Path(module.__file__).resolve()
    if _visible(path):
        return None
    parts = name.split(".")
    root = path.parents[len(parts) - 1] if path.name != "__init__.py" else path.parents[len(parts)]
    packages = [root.joinpath(*parts[:i], "__init__.py") for i in range(1, len(parts))]
    return root, [path, *[p for p in packages if p.exists()]]


def command(devices: str, expose: list[Path] = ()) -> list[str]:
    """The bwrap command line that starts a program in the sandbox. ``devices``: the task's
    device type; a GPU task keeps the NVIDIA device files. ``expose``: single files shown
    read-only besides (``module_source``)."""
    binary = bwrap_path()
    if binary is None:
        raise SandboxUnavailable("bubblewrap (`bwrap`) is not installed")
    args = [
        binary, "--unshare-all", "--die-with-parent", "--new-session",
        "--proc", "/proc", "--dev", "/dev",
        "--size", str(SCRATCH_BYTES), "--tmpfs", SCRATCH,
    ]
    if os.geteuid() == 0:
        args += ["--cap-drop", "ALL"]  # root in the sandbox gets no capability
    for name in SYSTEM_DIRECTORIES:
        path = Path("/") / name
        if path.is_symlink():  # merged /usr: /bin -> usr/bin
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    for root in _visible_roots():
        if not any(root.is_relative_to(Path("/") / n) for n in SYSTEM_DIRECTORIES):
            args += ["--ro-bind", str(root), str(root)]
    for path in expose:
        args += ["--ro-bind", str(path), str(path)]
    if devices == "cuda":
        for device in sorted(glob.glob("/dev/nvidia*")) + sorted(glob.glob("/dev/dri/*")):
            args += ["--dev-bind", device, device]
    args += ["--size", str(SHARED_MEMORY_BYTES), "--tmpfs", SHARED_MEMORY]
    # the sandbox's own root and /dev (where bwrap made the mount points) become read-only too:
    # nothing a run writes outside the scratch can outlive it
    args += ["--remount-ro", "/dev", "--remount-ro", "/"]
    args += ["--chdir", SCRATCH, "--setenv", "HOME", SCRATCH, "--setenv", "TMPDIR", SCRATCH]
    return args + ["--"]
