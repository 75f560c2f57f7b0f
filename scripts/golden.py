#!/usr/bin/python3
"""Writes the PyTorch golden tensors that ddgi's Go tests compare against.

Run with Debian's Python and python3-torch (the PyTorch peer):
    /usr/bin/python3 scripts/golden.py
It writes torch/testdata/golden.safetensors (inputs and expected outputs)
and torch/testdata/state_dict.pt (a torch.save()d state_dict for LoadPT).
"""
import json
import math
import os
import struct

import torch
import torch.nn.functional as F

torch.manual_seed(0)
torch.set_num_threads(1)
out = {}


def put(name, t):
    out[name] = t.detach().clone().contiguous().float()


# conv2d with stride, padding and groups, plus its gradients
x = torch.randn(2, 4, 9, 9, requires_grad=True)
w = torch.randn(6, 2, 3, 3, requires_grad=True)
b = torch.randn(6, requires_grad=True)
y = F.conv2d(x, w, b, stride=2, padding=1, groups=2)
(y.sin().sum()).backward()
put("conv.x", x); put("conv.w", w); put("conv.b", b); put("conv.y", y)
put("conv.gx", x.grad); put("conv.gw", w.grad); put("conv.gb", b.grad)

# conv_transpose2d
xt = torch.randn(1, 3, 5, 5)
wt = torch.randn(3, 2, 4, 4)
put("convt.x", xt); put("convt.w", wt)
put("convt.y", F.conv_transpose2d(xt, wt, None, stride=2, padding=1))

# group norm + silu, layer norm, gelu
xg = torch.randn(2, 8, 5, 5)
gw, gb = torch.randn(8), torch.randn(8)
put("gn.x", xg); put("gn.w", gw); put("gn.b", gb)
put("gn.y", F.silu(F.group_norm(xg, 4, gw, gb, 1e-5)))
xl = torch.randn(3, 7)
lw, lb = torch.randn(7), torch.randn(7)
put("ln.x", xl); put("ln.w", lw); put("ln.b", lb)
put("ln.y", F.gelu(F.layer_norm(xl, (7,), lw, lb, 1e-5)))

# resampling and pooling
xi = torch.randn(1, 2, 5, 6)
put("interp.x", xi)
put("interp.bilinear", F.interpolate(xi, size=(10, 12), mode="bilinear", align_corners=False))
put("interp.nearest", F.interpolate(xi, size=(10, 12), mode="nearest"))
put("pool.avg", F.avg_pool2d(xi, 2, 2))
grid = torch.rand(1, 4, 3, 2) * 2.2 - 1.1
put("gs.grid", grid)
put("gs.y", F.grid_sample(xi, grid, mode="bilinear", padding_mode="zeros", align_corners=False))

# softmax family, cumulative ops, losses
xs = torch.randn(4, 5)
put("sm.x", xs)
put("sm.softmax", xs.softmax(-1)); put("sm.logsoftmax", xs.log_softmax(0))
put("cum.prod", (xs.sigmoid()).cumprod(1)); put("cum.sum", xs.cumsum(0))
tgt = torch.tensor([0, 4, 2, 1])
out["loss.target"] = tgt
put("loss.ce", F.cross_entropy(xs, tgt))
put("loss.bce", F.binary_cross_entropy_with_logits(xs, xs.sigmoid().round()))

# multi-head attention with diffusers-style weight names
q_in = torch.randn(2, 3, 8); ctx = torch.randn(2, 5, 6)
Wq, Wk, Wv = torch.randn(8, 8) * 0.3, torch.randn(8, 6) * 0.3, torch.randn(8, 6) * 0.3
Wo, bo = torch.randn(8, 8) * 0.3, torch.randn(8)
heads = 2
q = (q_in @ Wq.T).view(2, 3, heads, 4).transpose(1, 2)
k = (ctx @ Wk.T).view(2, 5, heads, 4).transpose(1, 2)
v = (ctx @ Wv.T).view(2, 5, heads, 4).transpose(1, 2)
p = (q @ k.transpose(-1, -2) / math.sqrt(4)).softmax(-1)
o = (p @ v).transpose(1, 2).reshape(2, 3, 8) @ Wo.T + bo
put("attn.x", q_in); put("attn.ctx", ctx)
put("attn.to_q.weight", Wq); put("attn.to_k.weight", Wk); put("attn.to_v.weight", Wv)
put("attn.to_out.weight", Wo); put("attn.to_out.bias", bo)
put("attn.y", o); put("attn.probs", p)

# Adam and AdamW on a small regression, 5 steps each
for name, ctor in [("adam", lambda ps: torch.optim.Adam(ps, lr=0.05)),
                   ("adamw", lambda ps: torch.optim.AdamW(ps, lr=0.05, weight_decay=0.1))]:
    torch.manual_seed(1)
    W = torch.randn(3, 4, requires_grad=True)
    put(name + ".w0", W)
    X = torch.randn(16, 4); Y = torch.randn(16, 3)
    put(name + ".X", X); put(name + ".Y", Y)
    opt = ctor([W])
    for _ in range(5):
        opt.zero_grad()
        ((X @ W.T - Y) ** 2).mean().backward()
        opt.step()
    put(name + ".w5", W)


def write_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name]
        dtype = {torch.float32: "F32", torch.int64: "I64"}[t.dtype]
        data = t.numpy().tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    header["__metadata__"] = {"generator": "scripts/golden.py", "torch": torch.__version__}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-(8 + len(h)) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    os.replace(tmp, path)


here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "torch", "testdata")
write_safetensors(os.path.join(here, "golden.safetensors"), out)
torch.save({"layer.weight": torch.arange(6.0).reshape(2, 3), "layer.bias": torch.tensor([1.5, -2.0]),
            "steps": torch.tensor([7])}, os.path.join(here, "state_dict.pt"))
print("wrote", len(out), "golden tensors")
