# Saves a checkpoint to a hard-coded Kaggle path that does not exist here: the run must fail as an
# error whose message names that path.
import torch


def unlearning(net, retain, forget, val):
    torch.save(net.state_dict(), '/kaggle/tmp/unlearned_checkpoint_0.pth')
    return net
