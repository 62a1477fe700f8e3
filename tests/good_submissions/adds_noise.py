"""A quick submission with spread across runs: seeded weight noise (milliseconds per run, so a
busy machine cannot push it over the time budget)."""

import torch


def unlearning(net, retain, forget, val):
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.add_(torch.randn_like(parameter) * 1e-3)
