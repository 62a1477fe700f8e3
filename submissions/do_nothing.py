"""Do nothing: return the original model unchanged (the floor).

Every run returns the same model, so the unlearned confidences have zero spread, every forget
example gets the epsilon cap and the forgetting quality is 0.
"""

NAME = "Do nothing"
REFERENCE = "NeurIPS 2023 Machine Unlearning competition FAQ (the `return net` example)"


def unlearning(net, retain, forget, val):
    return net
