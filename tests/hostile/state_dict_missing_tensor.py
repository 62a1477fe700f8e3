"""A model with one tensor too few: the head's bias dropped (``fc.bias``).

``nn.Linear`` runs without a bias, so the model still works, but its ``state_dict`` lacks a key of
the task's architecture.
"""


def unlearning(net, retain, forget, val):
    net.fc.register_parameter("bias", None)
    return net
