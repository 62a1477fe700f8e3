import time


def unlearning(net, retain, forget, val):
    while True:
        time.sleep(0.1)
