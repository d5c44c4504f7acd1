"""PyTorch twins of saat's hashing models, for the benchmarks' peer rows.

`torch_twin(torch, model)` builds the PyTorch module of `model.backbone` (cnn-small, alexnet or
vgg11 with their torchvision-style parameter names), loads `model.state_dict()` unchanged, puts
the model's per-channel normalisation in front (saat normalises inside the model) and returns it
in channels_last memory format, in eval mode. Output: tanh(hash_layer(...)), as saat's forward.
PyTorch is optional: callers import it and pass it in.
"""
from __future__ import annotations

import numpy as np


def _features(nn, cfg, kernel=None, stride=None, padding=None, pool=(2, 2)):
    layers, c, conv = [], 3, 0
    for item in cfg:
        if item is None:
            layers.append(nn.MaxPool2d(pool[0], pool[1]))
            continue
        k = kernel[conv] if kernel else 3
        s = stride[conv] if stride else 1
        p = padding[conv] if padding else 1
        layers += [nn.Conv2d(c, item, k, s, p), nn.ReLU(inplace=False)]
        c, conv = item, conv + 1
    return nn.Sequential(*layers)


def torch_twin(torch, model):
    """The PyTorch module equal to `model` (same weights, normalisation and output)."""
    nn = torch.nn
    bits = model.bits
    if model.backbone == "cnn-small":
        feats = _features(nn, [32, None, 64, None])
        cls = nn.Sequential(nn.Linear(4096, 512), nn.ReLU())
        hash_in = 512
    elif model.backbone == "alexnet":
        feats = _features(nn, [64, None, 192, None, 384, 256, 256, None], kernel=[11, 5, 3, 3, 3],
                          stride=[4, 1, 1, 1, 1], padding=[2, 2, 1, 1, 1], pool=(3, 2))
        cls = nn.Sequential(nn.Dropout(0.5), nn.Linear(9216, 4096), nn.ReLU(), nn.Dropout(0.5),
                            nn.Linear(4096, 4096), nn.ReLU())
        hash_in = 4096
    elif model.backbone == "vgg11":
        feats = _features(nn, [64, None, 128, None, 256, 256, None, 512, 512, None, 512, 512, None])
        cls = nn.Sequential(nn.Linear(25088, 4096), nn.ReLU(), nn.Dropout(0.5), nn.Linear(4096, 4096),
                            nn.ReLU(), nn.Dropout(0.5))
        hash_in = 4096
    else:
        raise ValueError(f"torch_twin: no PyTorch twin of backbone {model.backbone!r}")
    mean = torch.tensor(np.asarray(model.mean, np.float32)).view(1, 3, 1, 1)
    inv_std = torch.tensor(1 / np.asarray(model.std, np.float32)).view(1, 3, 1, 1)
    normalise = bool(np.any(model.mean != 0) or np.any(model.std != 1))

    class Twin(nn.Module):
        def __init__(self):
            super().__init__()
            self.features, self.classifier, self.hash_layer = feats, cls, nn.Linear(hash_in, bits)

        def forward(self, x):
            if normalise:
                x = (x - mean) * inv_std
            return torch.tanh(self.hash_layer(self.classifier(torch.flatten(self.features(x), 1))))

    net = Twin()
    net.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in model.state_dict().items()})
    return net.to(memory_format=torch.channels_last).eval()
