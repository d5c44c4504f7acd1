"""The ProS-GAN generator in PyTorch, with the module structure (hence the state_dict names) of the
official code's ``model/module.py`` (``Generator``, ``LabelEncoder``, ``ResidualBlock`` with
``net_mode='t'``), sized from a saat state dict (the official widths are 64 and 128 at 224×224;
saat halves them below 112×112). Written for the parity test; needs torch."""


def official_generator(torch, state: dict):
    nn = torch.nn

    class ResidualBlock(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.main = nn.Sequential(nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.InstanceNorm2d(c), nn.ReLU(True),
                                      nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.InstanceNorm2d(c))

        def forward(self, x):
            return x + self.main(x)

    class LabelEncoder(nn.Module):
        def __init__(self, nf, size):
            super().__init__()
            self.nf, self.size = nf, size
            self.fc = nn.Sequential(nn.Linear(512, nf * size * size), nn.ReLU(True))
            layers, c = [], nf
            for _ in range(4):
                layers += [nn.ConvTranspose2d(c, c // 2, 4, 2, 1, bias=False), nn.InstanceNorm2d(c // 2), nn.ReLU(True)]
                c //= 2
            layers.append(nn.Conv2d(c, 3, 3, 1, 1, bias=False))
            self.transform = nn.Sequential(*layers)

        def forward(self, image, feature):
            f = self.fc(feature).view(feature.size(0), self.nf, self.size, self.size)
            return torch.cat((self.transform(f), image), dim=1)

    class Generator(nn.Module):
        def __init__(self, w, nf, size):
            super().__init__()
            self.label_encoder = LabelEncoder(nf, size)
            enc, c = [nn.Conv2d(6, w, 7, 1, 3), nn.InstanceNorm2d(w), nn.ReLU(True)], w
            for _ in range(2):
                enc += [nn.Conv2d(c, 2 * c, 4, 2, 1), nn.InstanceNorm2d(2 * c), nn.ReLU(True)]
                c *= 2
            enc += [ResidualBlock(c) for _ in range(3)]
            self.image_encoder = nn.Sequential(*enc)
            dec = [ResidualBlock(c) for _ in range(3)]
            for _ in range(2):
                dec += [nn.ConvTranspose2d(c, c // 2, 4, 2, 1, bias=False), nn.InstanceNorm2d(c // 2), nn.ReLU(True)]
                c //= 2
            self.decoder = nn.Sequential(*dec)
            self.residual = nn.Sequential(nn.Conv2d(c + 3, 3, 3, 1, 1, bias=False), nn.Tanh())

        def forward(self, x, feature):
            mixed = self.label_encoder(x, feature)
            decoded = self.decoder(self.image_encoder(mixed))
            return self.residual(torch.cat([decoded, x], dim=1)), mixed

    g_state = {k[len("generator."):]: torch.from_numpy(v) for k, v in state.items() if k.startswith("generator.")}
    w = g_state["image_encoder.0.weight"].shape[0]
    nf = g_state["label_encoder.transform.0.weight"].shape[0]
    size = int(round((g_state["label_encoder.fc.0.weight"].shape[0] / nf) ** 0.5))
    g = Generator(w, nf, size)
    g.load_state_dict(g_state, strict=True)
    return g.eval()
