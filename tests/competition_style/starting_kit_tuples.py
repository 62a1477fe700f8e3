# The starting kit's style: (inputs, targets) tuples, the model returned in eval mode; the method
# is bound by assignment, not by a `def` of that name.
import torch
from torch import nn, optim

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _finetune(net, retain, forget, validation):
    epochs = 1
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.SGD(net.parameters(), lr=0.001, momentum=0.9, weight_decay=5e-4)
    net.train()
    for _ in range(epochs):
        for inputs, targets in retain:
            inputs, targets = inputs.to(DEVICE), targets.to(DEVICE)
            optimizer.zero_grad()
            criterion(net(inputs), targets).backward()
            optimizer.step()
    net.eval()
    return net


unlearning = _finetune
