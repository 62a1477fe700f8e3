# Writes a checkpoint to a relative path and reads it back, checking that it starts in an empty
# working directory of its own and that no GPU is visible on a CPU task.
import os

import torch


def unlearning(net, retain, forget, val):
    assert os.listdir(".") == [], f"the run's directory is not empty: {os.listdir('.')}"
    assert not torch.cuda.is_available(), "a GPU is visible on a CPU task"
    assert next(net.parameters()).device.type == "cpu"
    torch.save(net.state_dict(), "checkpoint.pth")
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 1e-3)
    net.load_state_dict(torch.load("checkpoint.pth"))
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 1e-3)
