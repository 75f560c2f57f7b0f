#!/usr/bin/python3
"""PyTorch side of `go run ./bench/sd -peer`: for one stage, builds the
reference classes from the user's diffusers and transformers at Stable
Diffusion 1.5's public configuration with random weights (PyTorch's own
init, counted in load_s), times the same work as the Go stage of that name
under torch.no_grad() in fp32, and prints one JSON line: stage, load_s,
work_s, peak_rss_mb. With --precision bf16 the text tower, U-Net and
ControlNet are cast to bfloat16 (.to(torch.bfloat16), as a pipeline's
torch_dtype does), the U-Net's inputs with them, the outputs back to fp32,
as ddgi's --precision bf16; the VAE and scheduler stay fp32.

    text    CLIPTextModel (ViT-L/14 text config) encodes the prompt and the
            empty prompt, one batch of 2
    unet    ControlNetModel.from_unet(unet, conditioning_channels=3) and
            UNet2DConditionModel: one controlled ε pass, batch 1, t = 500,
            a random 77×768 context, a one-hot mask hint 8× the latent side
    vae     AutoencoderKL (SD's VAE config) decodes one latent
    sample  DDIMScheduler (SD's config), --steps steps; each step three
            U-Net + ControlNet passes as ddgi's diffusion.Pipeline runs them
            (prompt + mask, empty prompt + mask, empty prompt + zero mask),
            combined with guidance text 3, mask 2; then a VAE decode

The latent side is --latent (sample_size); the networks are full width at
every side. Missing modules exit with status 3 and one line on stderr
(--stage check only imports them)."""
import argparse
import json
import os
import resource
import statistics
import sys
import time

MISSING = 3

# runwayml/stable-diffusion-v1-5, unet/config.json
UNET = dict(
    act_fn="silu", attention_head_dim=8, block_out_channels=(320, 640, 1280, 1280), center_input_sample=False,
    cross_attention_dim=768, down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",), downsample_padding=1,
    flip_sin_to_cos=True, freq_shift=0, in_channels=4, layers_per_block=2, mid_block_scale_factor=1, norm_eps=1e-5,
    norm_num_groups=32, out_channels=4, up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3)
# vae/config.json
VAE = dict(
    act_fn="silu", block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4, in_channels=3,
    latent_channels=4, layers_per_block=2, norm_num_groups=32, out_channels=3, up_block_types=("UpDecoderBlock2D",) * 4,
    scaling_factor=0.18215)
# scheduler/scheduler_config.json (read by DDIMScheduler as the pipelines do)
SCHEDULER = dict(
    beta_end=0.012, beta_schedule="scaled_linear", beta_start=0.00085, clip_sample=False, num_train_timesteps=1000,
    set_alpha_to_one=False, steps_offset=1)
# openai/clip-vit-large-patch14, text_config (text_encoder/config.json)
CLIP_TEXT = dict(
    vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
    max_position_embeddings=77, hidden_act="quick_gelu", layer_norm_eps=1e-5)
PROMPT = "a smiling woman with blond hair"
GUIDANCE_TEXT, GUIDANCE_MASK = 3.0, 2.0  # face.SampleGuidance


def need(module, *names):
    """Imports module and returns its attributes names, or exits with one
    line naming what is missing."""
    try:
        m = __import__(module)
        got = [getattr(m, n) for n in names]  # diffusers and transformers import lazily, here
    except (ImportError, RuntimeError) as e:  # (their lazy imports wrap ImportError in RuntimeError)
        what = ", ".join(f"{module}.{n}" for n in names) if names else module
        hint = "apt-get install python3-torch" if module == "torch" else \
            "install it, or point bench/sd's -pythonpath at the folder that holds it (a checkout's src/)"
        msg = " ".join(str(e).split())
        print(f"peer.py: cannot import {what}: {msg[-300:]}; {hint}", file=sys.stderr)
        sys.exit(MISSING)
    return m if not names else got[0] if len(names) == 1 else got


class Tokens:
    """CLIP tokenization of the set's tokenizer folder (vocab.json +
    merges.txt) by transformers' CLIPTokenizer, framed by start and end of
    text and padded with end of text to 77 as SD1.5's tokenizer does; a
    fixed id row when the set has no such folder."""

    def __init__(self, torch, folder):
        self.torch, self.tok = torch, None
        if folder and os.path.isfile(os.path.join(folder, "vocab.json")) and os.path.isfile(os.path.join(folder, "merges.txt")):
            CLIPTokenizer = need("transformers", "CLIPTokenizer")
            self.tok = CLIPTokenizer(os.path.join(folder, "vocab.json"), os.path.join(folder, "merges.txt"))
            self.bos, self.eos = self.tok.convert_tokens_to_ids(["<|startoftext|>", "<|endoftext|>"])
        else:
            self.bos, self.eos = 49406, 49407

    def __call__(self, texts):
        ids = self.torch.full((len(texts), 77), self.eos, dtype=self.torch.long)
        for i, text in enumerate(texts):
            row = [self.bos] + (self.tok.convert_tokens_to_ids(self.tok.tokenize(text)) if self.tok else []) + [self.eos]
            row = row[:76] + [self.eos] if len(row) > 77 else row
            ids[i, :len(row)] = self.torch.tensor(row)
        return ids


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--stage", required=True, choices=["text", "unet", "vae", "sample", "check"],
                    help="check: only import what the stages need")
    ap.add_argument("--latent", type=int, default=64, help="latent side (sample_size); the hint is 8× it")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=1, help="times the work runs: work_s is the first, warm_s the median of the rest")
    ap.add_argument("--tokenizer", default="", help="CLIP tokenizer folder (vocab.json, merges.txt)")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"], help="what the U-Net and ControlNet compute in")
    a = ap.parse_args()
    torch = need("torch")
    if a.stage == "check":
        need("diffusers", "UNet2DConditionModel", "ControlNetModel", "AutoencoderKL", "DDIMScheduler")
        need("transformers", "CLIPTextModel", "CLIPTextConfig", "CLIPTokenizer")
        return
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    L = a.latent

    t0 = time.perf_counter()
    nets = []

    def text_model():
        CLIPTextModel, CLIPTextConfig = need("transformers", "CLIPTextModel", "CLIPTextConfig")
        m = CLIPTextModel(CLIPTextConfig(**CLIP_TEXT))
        if a.precision == "bf16":
            m = m.to(torch.bfloat16)
        nets.append(m)
        return m, Tokens(torch, a.tokenizer)

    def unet_and_control():
        UNet2DConditionModel, ControlNetModel = need("diffusers", "UNet2DConditionModel", "ControlNetModel")
        unet = UNet2DConditionModel(sample_size=L, **UNET)
        control = ControlNetModel.from_unet(unet, conditioning_channels=3)
        if a.precision == "bf16":
            unet, control = unet.to(torch.bfloat16), control.to(torch.bfloat16)
        nets.extend([unet, control])
        return unet, control

    def autoencoder():
        vae = need("diffusers", "AutoencoderKL")(sample_size=8 * L, **VAE)
        nets.append(vae)
        return vae

    def controlled(unet, control, z, t, ctx, hint):
        dt = unet.dtype
        z, ctx, hint = z.to(dt), ctx.to(dt), hint.to(dt)
        down, mid = control(z, t, encoder_hidden_states=ctx, controlnet_cond=hint, conditioning_scale=1.0, return_dict=False)
        return unet(z, t, encoder_hidden_states=ctx, down_block_additional_residuals=down,
                    mid_block_additional_residual=mid, return_dict=False)[0].float()

    def mask_hint():
        # encoder.MaskCondition of an all-background mask: one-hot class 0.
        h = torch.zeros(1, 3, 8 * L, 8 * L)
        h[:, 0] = 1
        return h

    if a.stage == "text":
        te, tok = text_model()

        def work():
            te(tok([PROMPT, ""]))[0].float().sum().item()
    elif a.stage == "unet":
        unet, control = unet_and_control()

        def work():
            g = torch.Generator().manual_seed(1)
            z = torch.randn(1, 4, L, L, generator=g)
            ctx = torch.randn(1, 77, 768, generator=torch.Generator().manual_seed(2))
            controlled(unet, control, z, torch.tensor([500]), ctx, mask_hint()).sum().item()
    elif a.stage == "vae":
        vae = autoencoder()

        def work():
            z = torch.randn(1, 4, L, L, generator=torch.Generator().manual_seed(1))
            vae.decode(z / vae.config.scaling_factor, return_dict=False)[0].sum().item()
    else:  # sample
        unet, control = unet_and_control()
        te, tok = text_model()
        vae = autoencoder()
        sched = need("diffusers", "DDIMScheduler")(**SCHEDULER)

        def work():
            ctx = te(tok([PROMPT]))[0].float()
            empty = te(tok([""]))[0].float()
            hint = mask_hint()
            dropped = torch.zeros_like(hint)
            z = torch.randn(1, 4, L, L, generator=torch.Generator().manual_seed(1)) * sched.init_noise_sigma
            sched.set_timesteps(a.steps)
            for t in sched.timesteps:
                tt = t.reshape(1)
                full = controlled(unet, control, z, tt, ctx, hint)
                no_text = controlled(unet, control, z, tt, empty, hint)
                none = controlled(unet, control, z, tt, empty, dropped)
                eps = none + GUIDANCE_MASK * (no_text - none) + GUIDANCE_TEXT * (full - no_text)
                z = sched.step(eps, t, z, eta=0.0, return_dict=False)[0]
            vae.decode(z / vae.config.scaling_factor, return_dict=False)[0].clamp(-1, 1).sum().item()
    for m in nets:
        m.eval().requires_grad_(False)
    load = time.perf_counter() - t0

    times = []
    with torch.no_grad():
        for _ in range(a.reps):
            t1 = time.perf_counter()
            work()
            times.append(time.perf_counter() - t1)
    out = {"stage": a.stage, "load_s": load, "work_s": times[0], "peak_rss_mb": peak_rss_mb()}
    if len(times) > 1:
        out["warm_s"] = statistics.median(times[1:])
    print(json.dumps(out))


def peak_rss_mb():
    """This process's peak RSS: VmHWM, as bench/sd's stages measure theirs
    (getrusage's ru_maxrss would include the Go parent's peak, which Linux
    carries across exec)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    main()
