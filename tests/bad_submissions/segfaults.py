import ctypes


def unlearning(net, retain, forget, val):
    ctypes.string_at(0)
