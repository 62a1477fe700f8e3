"""Peeking at the test split: search this process's memory for every image array.

Walks ``gc.get_objects()`` (unfrozen first) and the dicts, lists and tuples among them, keeps
every float (or uint8) tensor or array that looks like digits images (a multiple of 64 values,
all in {0, 1/16, ..., 1} or {0, ..., 16}, not all equal), and prints how many distinct images it
saw in all and the length and SHA-256 (of the images as float32 in [0, 1], 64 per row) of the 30
largest. An entry that finds the test split in memory could tune against it.
"""

import gc
import hashlib
import warnings

import numpy as np
import torch


def _as_images(value):
    if isinstance(value, torch.Tensor):
        if value.is_sparse or value.numel() == 0 or value.numel() % 64:
            return None
        value = value.detach().cpu().numpy()
    elif not isinstance(value, np.ndarray) or value.size == 0 or value.size % 64:
        return None
    if value.dtype.kind not in "fu" or value.min() == value.max():
        return None
    images = value.astype(np.float32).reshape(-1, 64)
    if images.max() > 1:
        images = images / 16
    if images.min() < 0 or images.max() > 1 or not np.all(images * 16 == np.round(images * 16)):
        return None
    return np.ascontiguousarray(images, dtype=np.float32)


def _candidates():
    gc.unfreeze()  # objects a parent process froze (``gc.freeze``) are hidden from get_objects
    arrays = (torch.Tensor, np.ndarray)
    seen = {}
    for holder in gc.get_objects():
        kind = type(holder)
        if kind is dict:
            values = holder.values()
        elif kind is list or kind is tuple:
            values = holder
        elif isinstance(holder, torch.Tensor):
            values = (holder,)
        else:
            continue
        for value in values:
            if isinstance(value, arrays):
                seen[id(value)] = value
    return list(seen.values())


def unlearning(net, retain, forget, val):
    warnings.simplefilter("ignore")  # some of torch's objects warn when looked at
    found, rows = {}, set()
    for value in _candidates():
        try:
            images = _as_images(value)
        except Exception:  # odd tensors (meta, bfloat16, quantized): not images
            continue
        if images is not None and len(images) > 1:
            found[hashlib.sha256(images.tobytes()).hexdigest()] = len(images)
            rows.update(row.tobytes() for row in images)
    print(f"finds_test_split: {len(found)} image arrays, {len(rows)} distinct images")
    for digest, length in sorted(found.items(), key=lambda item: -item[1])[:30]:
        print(f"  {length} {digest}")
    return net
