#!/usr/bin/python3
"""PyTorch side of `go run ./bench/gan`: builds NVlabs' StyleGAN2 generator
from the user's stylegan2-ada-pytorch checkout (--ref) at full size with
random weights, pickles it as NVlabs' training loop does, writes random w+
codes, and times G.synthesis(ws, noise_mode='const') one image at a time.
Prints one JSON line: seconds per image (best round), peak RSS, files."""
import argparse
import copy
import json
import os
import pickle
import resource
import struct
import sys
import time

import torch


def save_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        b = t.detach().contiguous().float().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ref", required=True, help="stylegan2-ada-pytorch checkout")
    ap.add_argument("--res", type=int, default=1024)
    ap.add_argument("--images", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dir", required=True)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    sys.path.insert(0, a.ref)
    from training import networks  # the user's reference code, run as is on CPU

    torch.manual_seed(0)
    G = networks.Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=a.res, img_channels=3,
                           mapping_kwargs={"num_layers": 8},
                           synthesis_kwargs={"channel_base": 32768, "channel_max": 512, "num_fp16_res": 0, "conv_clamp": 256})
    with torch.no_grad():  # non-trivial noise strengths and mean latent
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.normal_(0, 0.1)
        G.mapping.w_avg.normal_(0, 1)
    G = copy.deepcopy(G).eval().requires_grad_(False)
    with open(os.path.join(a.dir, "net.pkl"), "wb") as f:
        pickle.dump({"G_ema": G}, f)
    ws = torch.randn(a.images, G.num_ws, 512)
    save_safetensors(os.path.join(a.dir, "ws.safetensors"), {"w_plus": ws})
    best, imgs = float("inf"), []
    with torch.no_grad():
        for rnd in range(2):
            t0 = time.perf_counter()
            out = [G.synthesis(ws[i:i + 1], noise_mode="const") for i in range(a.images)]
            best = min(best, (time.perf_counter() - t0) / a.images)
            imgs = out
    save_safetensors(os.path.join(a.dir, "ref.safetensors"), {"image": torch.cat(imgs)})
    print(json.dumps({"sec_per_image": best, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


if __name__ == "__main__":
    main()
