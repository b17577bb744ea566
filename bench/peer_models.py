#!/usr/bin/env python3
"""The Python peer of bench_models: the same three networks, sizes, loss and optimiser in PyTorch (Debian's
python3-torch, the same 1.13 as libtorch-dev). Prints one JSON object of rates for bench_models to compare against."""
import argparse
import json
import time

import torch
from torch import nn


class Mlp(nn.Module):
    def __init__(self, f, hidden, layers):
        super().__init__()
        mods, width = [], f
        for _ in range(layers):
            mods += [nn.Linear(width, hidden), nn.GELU()]
            width = hidden
        mods.append(nn.Linear(width, 2))
        self.body = nn.Sequential(*mods)

    def forward(self, x):
        return self.body(x[:, -1, :])


class Gru(nn.Module):
    def __init__(self, f, hidden, layers):
        super().__init__()
        self.gru = nn.GRU(f, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, 2)

    def forward(self, x):
        out, _ = self.gru(x)
        return self.head(out[:, -1, :])


class PatchTransformer(nn.Module):
    def __init__(self, f, window, d_model, heads, layers, patch):
        super().__init__()
        self.patch = patch
        self.embed = nn.Linear(patch * f, d_model)
        self.pos = nn.Parameter(torch.randn(window // patch, 1, d_model) * 0.02)
        layer = nn.TransformerEncoderLayer(d_model, heads, dim_feedforward=2 * d_model, dropout=0.0)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d_model, 2)

    def forward(self, x):
        b, l, f = x.shape
        tokens = self.embed(x.reshape(b, l // self.patch, self.patch * f)).transpose(0, 1)
        return self.head(self.encoder(tokens + self.pos).mean(0))


def loss_of(out, y_ret, y_up):
    return nn.functional.mse_loss(out[:, 0], y_ret) + nn.functional.binary_cross_entropy_with_logits(out[:, 1], y_up)


def train_rate(net, window, f, batch, seconds):
    x = torch.randn(batch, window, f)
    y_ret = torch.randn(batch)
    y_up = (torch.rand(batch) > 0.5).float()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
    net.train()

    def step():
        opt.zero_grad()
        loss = loss_of(net(x), y_ret, y_up)
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        return loss.item()

    for _ in range(3):
        step()
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        steps += 1
    return steps * batch / (time.perf_counter() - start)


def forward_ms(net, n, window, f, seconds):
    x = torch.randn(n, window, f)
    net.eval()
    with torch.no_grad():
        for _ in range(3):
            net(x)
        calls, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            net(x)
            calls += 1
    return (time.perf_counter() - start) / calls * 1e3


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--features", type=int, default=10)
    p.add_argument("--window", type=int, default=32)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--symbols", type=int, default=5000)
    p.add_argument("--seconds", type=float, default=1.0)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    f, w = a.features, a.window
    out = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "train_mlp": train_rate(Mlp(f, a.hidden, 2), w, f, a.batch, a.seconds),
        "train_gru": train_rate(Gru(f, a.hidden, 1), w, f, a.batch, a.seconds),
        "train_transformer": train_rate(PatchTransformer(f, w, a.hidden, 4, 2, 4), w, f, a.batch, a.seconds),
        "forward_mlp_ms": forward_ms(Mlp(f, a.hidden, 2), a.symbols, 1, f, a.seconds),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
