import sys


def unlearning(net, retain, forget, val):
    for i in range(20000):
        print("chatty line", i)
    sys.stderr.write("to stderr too\n")
