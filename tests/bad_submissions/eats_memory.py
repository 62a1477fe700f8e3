def unlearning(net, retain, forget, val):
    hoard = []
    while True:
        hoard.append(bytearray(64 * 2**20))
