"""A model with one tensor too many: a temperature buffer on the head (``fc.temperature``).

Entries that calibrate by scaling the logits store the scale on the model; its ``forward`` never
reads it here, but the returned ``state_dict`` has a key the task's architecture lacks.
"""

import torch


def unlearning(net, retain, forget, val):
    net.fc.register_buffer("temperature", torch.tensor(2.0))
    return net
