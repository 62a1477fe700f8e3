def unlearning(net, retain, forget, val):
    raise ValueError("this submission always fails")
