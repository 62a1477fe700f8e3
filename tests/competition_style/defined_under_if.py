# As the competition notebooks did: `unlearning` exists only in one branch of an `if` that
# checks for the Kaggle mock-submission file.
import os

import torch

if os.path.exists('/kaggle/input/neurips-2023-machine-unlearning/empty.txt'):
    print('mock submission')
else:
    DEVICE = 'cuda' if torch.cuda.is_available() else 'cpu'

    def unlearning(net, retain, forget, validation):
        optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
        net.train()
        for batch in forget:
            inputs, targets = batch['image'].to(DEVICE), batch['age_group'].to(DEVICE)
            loss = -torch.nn.functional.cross_entropy(net(inputs), targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        net.eval()
