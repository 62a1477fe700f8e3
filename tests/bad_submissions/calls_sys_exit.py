import sys


def unlearning(net, retain, forget, val):
    sys.exit(3)
