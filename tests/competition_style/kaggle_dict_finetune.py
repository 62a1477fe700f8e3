# Written the way Kaggle entries of the NeurIPS 2023 unlearning competition were: dict batches,
# a DEVICE picked by torch.cuda.is_available(), net changed in place, nothing returned, and the
# model left in train mode (the harness must evaluate it in eval mode).
import torch
from torch import nn, optim

DEVICE = 'cuda' if torch.cuda.is_available() else 'cpu'


def unlearning(net, retain_loader, forget_loader, val_loader):
    epochs = 1
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    net.train()
    for _ in range(epochs):
        for sample in retain_loader:
            inputs = sample["image"].to(DEVICE)
            targets = sample["age_group"].to(DEVICE)
            optimizer.zero_grad()
            loss = criterion(net(inputs), targets)
            loss.backward()
            optimizer.step()
        scheduler.step()

    def refuse_train_mode(module, args):
        if module.training:
            raise RuntimeError("the harness evaluated the model in train mode")

    net.register_forward_pre_hook(refuse_train_mode)
