#!/usr/bin/python3
"""PyTorch peer of bench/engine: the same conv-net training step, timed.

Prints one JSON line: {"steps_per_s": ..., "op_us": ...}. Run by
`go run ./bench/engine`, which compares it with the Go engine.
"""
import json
import sys
import time

import torch
import torch.nn as nn

threads, steps, warm = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
torch.manual_seed(0)

layers = []
cin = 3
for _ in range(4):
    layers += [nn.Conv2d(cin, 64, 3, padding=1), nn.GroupNorm(8, 64), nn.SiLU()]
    cin = 64
net = nn.Sequential(*layers)
opt = torch.optim.Adam(net.parameters(), lr=1e-3)
x = torch.randn(8, 3, 32, 32)


def step():
    opt.zero_grad(set_to_none=True)
    loss = net(x).square().mean()
    loss.backward()
    opt.step()


for _ in range(warm):
    step()
t0 = time.perf_counter()
for _ in range(steps):
    step()
sps = steps / (time.perf_counter() - t0)

# Per-op overhead on a one-element tensor.
s = torch.ones(1)
n = 20000
t0 = time.perf_counter()
for _ in range(n):
    s + 1.0
op_us = (time.perf_counter() - t0) / n * 1e6
print(json.dumps({"steps_per_s": sps, "op_us": op_us}))
