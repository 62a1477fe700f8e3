"""Work after the clock stops: a background thread and a detached daemon outlive the run.

``unlearning`` returns the model untouched at once (a 0 s run). A thread then keeps training the
returned model on the retain set, starting a fifth of a second after the return, and a daemon
(double-forked, in a session of its own, ``MARKER`` in its command line) writes
``/tmp/<MARKER>-<pid>`` every tenth of a second for two minutes. At import it reports what
earlier runs left behind: marker files and processes with the marker in their command line.
"""

import glob
import subprocess
import sys
import threading
import time

import torch
from torch import nn

MARKER = "hostile-helper-7f3a9c"
DAEMON = f"""
import os, time
if os.fork():
    os._exit(0)
os.setsid()
end = time.time() + 120
while time.time() < end:
    with open(f"/tmp/{MARKER}-{{os.getpid()}}", "w") as handle:
        handle.write(str(time.time()))
    time.sleep(0.1)
"""


def _marked_processes():
    found = 0
    for path in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            with open(path, "rb") as handle:
                found += MARKER.encode() in handle.read()
        except OSError:
            pass
    return found


print(f"left by earlier runs: {len(glob.glob(f'/tmp/{MARKER}-*'))} files, "
      f"{_marked_processes()} processes")


def _inside_unlearning(thread_id):
    frame = sys._current_frames().get(thread_id)
    while frame is not None:
        if frame.f_code is unlearning.__code__:
            return True
        frame = frame.f_back
    return False


def _train_after_return(net, retain, caller):
    while _inside_unlearning(caller):
        time.sleep(0.001)
    time.sleep(0.2)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05)
    end = time.time() + 60
    while time.time() < end:
        for inputs, targets in retain:
            loss = nn.functional.cross_entropy(net(inputs), targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()


def unlearning(net, retain, forget, val):
    subprocess.Popen([sys.executable, "-c", DAEMON, MARKER], start_new_session=True,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    threading.Thread(target=_train_after_return, args=(net, retain, threading.get_ident()),
                     daemon=True).start()
    return net
