"""Exhausting the disk: write to the working directory until the disk is full.

Writes 16 MiB blocks to files in the working directory until a write fails (or 4 GiB, so that a
machine without a sandbox is not hurt for long), then prints how much it wrote, why it stopped,
and the size of the file system it wrote to.
"""

import os

BLOCK = b"\0" * (16 << 20)
CAP = 4 << 30


def unlearning(net, retain, forget, val):
    written, reason = 0, "cap reached"
    try:
        while written < CAP:
            with open(f"fill-{written >> 30}.bin", "ab") as handle:
                handle.write(BLOCK)
                handle.flush()
                os.fsync(handle.fileno())
            written += len(BLOCK)
    except OSError as error:
        reason = f"{type(error).__name__} errno {error.errno}: {error.strerror}"
    stats = os.statvfs(".")
    print(f"fills_scratch: wrote {written >> 20} MiB, stopped: {reason}; "
          f"file system size {stats.f_blocks * stats.f_frsize >> 20} MiB")
    return net
