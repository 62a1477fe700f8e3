"""A careless entry: torch's process-wide settings changed at import and never restored.

Default dtype float64, gradients off, a global forward hook that adds noise to every module's
output, a fixed seed, denormals flushed; the run returns the model unchanged. Where the model is
evaluated in the process that imported this file, every one of these changes the numbers.
"""

import torch


def _noise(module, inputs, output):
    if isinstance(output, torch.Tensor) and output.is_floating_point():
        return output + torch.randn_like(output)
    return output


torch.set_default_dtype(torch.float64)
torch.set_grad_enabled(False)
torch.nn.modules.module.register_module_forward_hook(_noise)
torch.manual_seed(0)
torch.set_flush_denormal(True)


def unlearning(net, retain, forget, val):
    return net
