def unlearning(net, retain, forget, val):
    return "not a model"
