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


class DeterministicRand:
    """Stands for `torch` inside EG3D's renderer: its two random draws become
    ddgi's deterministic placement (stratified jitter 1/2, importance
    quantiles (j + 1/2)/K), so both engines render the same samples."""

    def __init__(self, real):
        self.real = real

    def __getattr__(self, name):
        return getattr(self.real, name)

    def rand_like(self, t, **kw):
        return self.real.full_like(t, 0.5)

    def rand(self, *size, device=None, **kw):
        n, k = size[0] if len(size) == 2 else size[0][0], size[1] if len(size) == 2 else size[0][1]
        u = (self.real.arange(k, dtype=self.real.float32) + 0.5) / k
        return u.expand(n, k).contiguous().to(device)


def eg3d(a):
    """NVlabs' TriPlaneGenerator in its ffhq512-128 configuration (train.py
    --cfg=ffhq, 512², neural rendering 128, 48+48 samples, Hybrid8XDC)."""
    sys.path.insert(0, a.ref)
    from training.triplane import TriPlaneGenerator  # the user's eg3d checkout
    import training.volumetric_rendering.renderer as renderer
    renderer.torch = DeterministicRand(torch)
    rk = {"image_resolution": 512, "disparity_space_sampling": False, "clamp_mode": "softplus",
          "superresolution_module": "training.superresolution.SuperresolutionHybrid8XDC", "c_gen_conditioning_zero": False,
          "gpc_reg_prob": 0.5, "c_scale": 1.0, "superresolution_noise_mode": "none", "density_reg": 0.25,
          "density_reg_p_dist": 0.004, "reg_type": "l1", "decoder_lr_mul": 1.0, "sr_antialias": True,
          "depth_resolution": 48, "depth_resolution_importance": 48, "ray_start": 2.25, "ray_end": 3.3, "box_warp": 1,
          "avg_camera_radius": 2.7, "avg_camera_pivot": [0, 0, 0.2]}
    torch.manual_seed(0)
    G = TriPlaneGenerator(z_dim=512, c_dim=25, w_dim=512, img_resolution=512, img_channels=3,
                          mapping_kwargs={"num_layers": 2}, rendering_kwargs=rk, sr_num_fp16_res=4,
                          sr_kwargs={"channel_base": 32768, "channel_max": 512, "fused_modconv_default": "inference_only"},
                          channel_base=32768, channel_max=512, fused_modconv_default="inference_only",
                          num_fp16_res=0, conv_clamp=None)
    G.neural_rendering_resolution = 128
    with torch.no_grad():
        G.backbone.mapping.w_avg.normal_(0, 1)
        G.decoder.net[2].bias[0] = 2.0  # some opacity, so rays composite rather than pass through
    G = copy.deepcopy(G).eval().requires_grad_(False)
    with open(os.path.join(a.dir, "net.pkl"), "wb") as f:
        pickle.dump({"G_ema": G}, f)
    ws = torch.randn(a.images, G.backbone.num_ws, 512)
    # A three-quarter view on EG3D's FFHQ orbit, built by its own camera code (as gen_samples.py).
    from camera_utils import LookAtPoseSampler, FOV_to_intrinsics
    pose = LookAtPoseSampler.sample(3.14159 / 2 + 0.4, 3.14159 / 2, torch.tensor([0, 0, 0.2]), radius=2.7)
    c = torch.cat([pose.reshape(-1, 16), FOV_to_intrinsics(18.837).reshape(-1, 9)], 1)
    save_safetensors(os.path.join(a.dir, "ws.safetensors"), {"w_plus": ws, "camera": c})
    return lambda i: G.synthesis(ws[i:i + 1], c, noise_mode="const")["image"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ref", required=True, help="stylegan2-ada-pytorch checkout (or eg3d/eg3d with --arch eg3d)")
    ap.add_argument("--arch", default="stylegan2")
    ap.add_argument("--res", type=int, default=1024)
    ap.add_argument("--images", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dir", required=True)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.arch == "eg3d":
        render = eg3d(a)
        timed(a, render)
        return
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
    timed(a, lambda i: G.synthesis(ws[i:i + 1], noise_mode="const"))


def timed(a, render):
    """Renders every code one at a time, two rounds; prints the best round."""
    best, imgs = float("inf"), []
    with torch.no_grad():
        for rnd in range(2):
            t0 = time.perf_counter()
            out = [render(i) for i in range(a.images)]
            best = min(best, (time.perf_counter() - t0) / a.images)
            imgs = out
    save_safetensors(os.path.join(a.dir, "ref.safetensors"), {"image": torch.cat(imgs)})
    print(json.dumps({"sec_per_image": best, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


if __name__ == "__main__":
    main()
