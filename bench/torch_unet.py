#!/usr/bin/env python3
"""The UNet step of `latte bench unet --config sd15` in plain PyTorch, for a side-by-side table.

A self-contained UNet2DConditionModel (diffusers 0.25 semantics, SD1.5-class configs: CrossAttn/
plain down and up blocks, UNetMidBlock2DCrossAttn, conv proj_in/proj_out, GEGLU feed-forward)
whose parameter names are diffusers', so it loads the folder `latte export-random` writes
(config.json + diffusion_pytorch_model.safetensors) with load_state_dict(strict=True). fp16,
attention through F.scaled_dot_product_attention, eager or torch.compile. Writes the JSON schema
of Latte's UNet bench ("latte-bench-unet/1"). Needs only torch (no diffusers, no safetensors).

  latte export-random --config sd15 --seed 0 --out /tmp/sd15-random
  python3 bench/torch_unet.py --model /tmp/sd15-random --mode eager --json eager.json
  python3 bench/torch_unet.py --model /tmp/sd15-random --mode compile --json compile.json
"""
import argparse, datetime, json, math, os, platform, struct, subprocess, time

import torch
import torch.nn as nn
import torch.nn.functional as F

DTYPES = {"F16": torch.float16, "F32": torch.float32, "BF16": torch.bfloat16, "F64": torch.float64}


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        out[name] = torch.frombuffer(bytearray(data[a:b]), dtype=DTYPES[t["dtype"]]).reshape(t["shape"])
    return out


def gn(c, groups, eps):
    return nn.GroupNorm(groups, c, eps=eps, affine=True)


class Resnet(nn.Module):  # ResnetBlock2D
    def __init__(self, cin, cout, temb, groups, eps, scale=1.0):
        super().__init__()
        self.norm1, self.conv1 = gn(cin, groups, eps), nn.Conv2d(cin, cout, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb, cout)
        self.norm2, self.conv2 = gn(cout, groups, eps), nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None
        self.scale = scale

    def forward(self, x, temb_act):  # temb_act = silu(temb), [B, temb]
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_emb_proj(temb_act)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        s = x if self.conv_shortcut is None else self.conv_shortcut(x)
        return (s + h) / self.scale


class Attention(nn.Module):
    def __init__(self, dim, kv_dim, heads):
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(kv_dim, dim, bias=False)
        self.to_v = nn.Linear(kv_dim, dim, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(dim, dim), nn.Dropout(0.0)])

    def forward(self, x, kv):
        b, s, d = x.shape
        split = lambda t: t.view(b, -1, self.heads, d // self.heads).transpose(1, 2)  # [B, heads, S, d/heads]
        o = F.scaled_dot_product_attention(split(self.to_q(x)), split(self.to_k(kv)), split(self.to_v(kv)))
        return self.to_out[0](o.transpose(1, 2).reshape(b, s, d))


class GEGLU(nn.Module):
    def __init__(self, dim, inner):
        super().__init__()
        self.proj = nn.Linear(dim, inner * 2)

    def forward(self, x):
        h, gate = self.proj(x).chunk(2, dim=-1)
        return h * F.gelu(gate)


class FeedForward(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.net = nn.ModuleList([GEGLU(dim, 4 * dim), nn.Dropout(0.0), nn.Linear(4 * dim, dim)])

    def forward(self, x):
        return self.net[2](self.net[0](x))


class BasicTransformerBlock(nn.Module):
    def __init__(self, dim, ctx_dim, heads, only_cross):
        super().__init__()
        self.only_cross = only_cross
        self.norm1, self.attn1 = nn.LayerNorm(dim), Attention(dim, ctx_dim if only_cross else dim, heads)
        self.norm2, self.attn2 = nn.LayerNorm(dim), Attention(dim, ctx_dim, heads)
        self.norm3, self.ff = nn.LayerNorm(dim), FeedForward(dim)

    def forward(self, h, ctx):
        n = self.norm1(h)
        h = self.attn1(n, ctx if self.only_cross else n) + h
        h = self.attn2(self.norm2(h), ctx) + h
        return self.ff(self.norm3(h)) + h


class Transformer2D(nn.Module):  # Transformer2DModel, conv proj_in/proj_out (use_linear_projection false)
    def __init__(self, c, ctx_dim, heads, layers, groups, only_cross):
        super().__init__()
        self.norm = gn(c, groups, 1e-6)
        self.proj_in = nn.Conv2d(c, c, 1)
        self.transformer_blocks = nn.ModuleList(
            [BasicTransformerBlock(c, ctx_dim, heads, only_cross) for _ in range(layers)])
        self.proj_out = nn.Conv2d(c, c, 1)

    def forward(self, x, ctx):
        b, c, hh, ww = x.shape
        h = self.proj_in(self.norm(x)).permute(0, 2, 3, 1).reshape(b, hh * ww, c)  # [B, HW, C]
        for blk in self.transformer_blocks:
            h = blk(h, ctx)
        return self.proj_out(h.reshape(b, hh, ww, c).permute(0, 3, 1, 2)) + x


class Sampler(nn.Module):  # Downsample2D / Upsample2D: the conv is `.conv`
    def __init__(self, c, stride, pad):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, stride=stride, padding=pad)


class Block(nn.Module):
    pass


def per_level(v, n):
    return list(v) if isinstance(v, (list, tuple)) else [v] * n


class UNet(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        boc = cfg["block_out_channels"]
        n = len(boc)
        groups, eps = cfg.get("norm_num_groups", 32), cfg.get("norm_eps", 1e-5)
        heads = per_level(cfg.get("attention_head_dim", 8), n)  # diffusers' SD1.5 naming: this is the head count
        layers = per_level(cfg.get("layers_per_block", 2), n)
        tlayers = per_level(cfg.get("transformer_layers_per_block", 1), n)
        only_cross = per_level(cfg.get("only_cross_attention", False), n)
        ctx = cfg.get("cross_attention_dim", 768)
        ctx = ctx[0] if isinstance(ctx, list) else ctx
        assert not cfg.get("use_linear_projection", False), "linear proj_in/proj_out not implemented here"
        assert cfg.get("downsample_padding", 1) == 1, "downsample_padding 0 (pad right/bottom) not implemented here"
        temb = boc[0] * 4
        self.flip, self.shift, self.c0 = cfg.get("flip_sin_to_cos", True), cfg.get("freq_shift", 0), boc[0]
        self.time_embedding = Block()
        self.time_embedding.linear_1, self.time_embedding.linear_2 = nn.Linear(boc[0], temb), nn.Linear(temb, temb)
        kin, kout = cfg.get("conv_in_kernel", 3), cfg.get("conv_out_kernel", 3)
        self.conv_in = nn.Conv2d(cfg.get("in_channels", 4), boc[0], kin, padding=kin // 2)
        skips = [boc[0]]  # channels of each skip, pushed in order
        self.down_blocks = nn.ModuleList()
        c = boc[0]
        for i, t in enumerate(cfg["down_block_types"]):
            blk = Block()
            blk.resnets = nn.ModuleList()
            blk.attentions = nn.ModuleList() if t == "CrossAttnDownBlock2D" else None
            for j in range(layers[i]):
                blk.resnets.append(Resnet(c, boc[i], temb, groups, eps))
                c = boc[i]
                if blk.attentions is not None:
                    blk.attentions.append(Transformer2D(c, ctx, heads[i], tlayers[i], groups, only_cross[i]))
                skips.append(c)
            if i < n - 1:
                blk.downsamplers = nn.ModuleList([Sampler(c, 2, cfg.get("downsample_padding", 1))])
                skips.append(c)
            self.down_blocks.append(blk)
        ms = cfg.get("mid_block_scale_factor", 1.0)
        self.mid_block = Block()
        self.mid_block.resnets = nn.ModuleList([Resnet(c, c, temb, groups, eps, ms), Resnet(c, c, temb, groups, eps, ms)])
        self.mid_block.attentions = nn.ModuleList([Transformer2D(c, ctx, heads[-1], tlayers[-1], groups, False)])
        self.up_blocks = nn.ModuleList()
        for i, t in enumerate(cfg["up_block_types"]):
            r = n - 1 - i
            blk = Block()
            blk.resnets = nn.ModuleList()
            blk.attentions = nn.ModuleList() if t == "CrossAttnUpBlock2D" else None
            for j in range(layers[r] + 1):
                blk.resnets.append(Resnet(c + skips.pop(), boc[r], temb, groups, eps))
                c = boc[r]
                if blk.attentions is not None:
                    blk.attentions.append(Transformer2D(c, ctx, heads[r], tlayers[r], groups, only_cross[r]))
            if i < n - 1:
                blk.upsamplers = nn.ModuleList([Sampler(c, 1, 1)])
            self.up_blocks.append(blk)
        self.conv_norm_out = gn(c, groups, eps)
        self.conv_out = nn.Conv2d(c, cfg.get("out_channels", 4), kout, padding=kout // 2)

    def time_proj(self, t):  # diffusers get_timestep_embedding, in fp32
        half = self.c0 // 2
        freq = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32, device=t.device) / (half - self.shift))
        e = t.float()[:, None] * freq[None]
        e = torch.cat([torch.cos(e), torch.sin(e)] if self.flip else [torch.sin(e), torch.cos(e)], dim=-1)
        return e

    def forward(self, sample, t, ctx):
        te = self.time_embedding
        temb = te.linear_2(F.silu(te.linear_1(self.time_proj(t).to(sample.dtype))))
        ta = F.silu(temb)
        h = self.conv_in(sample)
        skips = [h]
        for blk in self.down_blocks:
            for j, res in enumerate(blk.resnets):
                h = res(h, ta)
                if blk.attentions is not None:
                    h = blk.attentions[j](h, ctx)
                skips.append(h)
            if hasattr(blk, "downsamplers"):
                h = blk.downsamplers[0].conv(h)
                skips.append(h)
        m = self.mid_block
        h = m.resnets[1](m.attentions[0](m.resnets[0](h, ta), ctx), ta)
        for blk in self.up_blocks:
            for j, res in enumerate(blk.resnets):
                h = res(torch.cat([h, skips.pop()], dim=1), ta)  # [B, C + C_skip, H, W]
                if blk.attentions is not None:
                    h = blk.attentions[j](h, ctx)
            if hasattr(blk, "upsamplers"):
                h = blk.upsamplers[0].conv(F.interpolate(h, size=skips[-1].shape[-2:], mode="nearest"))
        return self.conv_out(F.silu(self.conv_norm_out(h)))


def stats(v):  # numpy's linear-interpolation percentiles, as Latte's Stats
    s = sorted(v)

    def pct(q):
        r = q / 100 * (len(s) - 1)
        lo = int(math.floor(r))
        return s[lo] + (r - lo) * (s[min(lo + 1, len(s) - 1)] - s[lo])
    return {"median": pct(50), "p10": pct(10), "p90": pct(90), "min": s[0], "max": s[-1], "raw": list(v)}


def git(*args):
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout.strip()
    except Exception:
        return "unknown"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="folder from `latte export-random`")
    p.add_argument("--mode", choices=["eager", "compile", "compile-reduce-overhead"], default="eager")
    p.add_argument("--height", type=int, default=512)
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--context", type=int, default=77)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json")
    a = p.parse_args()
    cfg = json.load(open(os.path.join(a.model, "config.json")))
    dev = torch.device("cuda")
    model = UNet(cfg)
    model.load_state_dict(load_safetensors(os.path.join(a.model, "diffusion_pytorch_model.safetensors")), strict=True)
    model = model.to(dev, torch.float16).eval()
    weight_bytes = sum(t.numel() * t.element_size() for t in model.parameters())
    g = torch.Generator(device="cpu").manual_seed(a.seed)
    sample = torch.randn(a.batch, cfg.get("in_channels", 4), a.height // 8, a.width // 8, generator=g).to(dev, torch.float16)
    ctx = torch.randn(a.batch, a.context, model.mid_block.attentions[0].transformer_blocks[0].attn2.to_k.in_features,
                      generator=g).to(dev, torch.float16)
    t = torch.full((a.batch,), 500.0, device=dev)
    run = model
    if a.mode != "eager":
        run = torch.compile(model, mode="reduce-overhead" if a.mode == "compile-reduce-overhead" else None)
    torch.cuda.reset_peak_memory_stats()
    with torch.inference_mode():
        for _ in range(a.warmup):
            out = run(sample, t, ctx)
        torch.cuda.synchronize()
        assert torch.isfinite(out).all(), "non-finite output"
        ms, wall = [], []
        for _ in range(a.iters):
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            w0 = time.perf_counter()
            s.record()
            run(sample, t, ctx)
            e.record()
            e.synchronize()
            ms.append(s.elapsed_time(e))
            wall.append((time.perf_counter() - w0) * 1e3)
        from torch.profiler import profile, ProfilerActivity
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            run(sample, t, ctx)
            torch.cuda.synchronize()
        kernels = sum(1 for ev in prof.events() if ev.device_type == torch.autograd.DeviceType.CUDA
                      and not ev.name.startswith(("Memcpy", "Memset")))
    free, total = torch.cuda.mem_get_info()
    report = {
        "schema": "latte-bench-unet/1", "benchmark": "unet_step", "runtime": "torch-" + a.mode,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(), "commit": git("rev-parse", "HEAD"),
        "machine": {"cpu": platform.processor(), "os": platform.platform(), "python": platform.python_version(),
                    "torch": torch.__version__, "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version()},
        "config": cfg.get("_latte_name", os.path.basename(os.path.normpath(a.model))),
        "weights": "loaded from " + a.model, "backend": "cuda", "dtype": "fp16",
        "cuda_graph": a.mode == "compile-reduce-overhead",
        "input": {"batch": a.batch, "height": a.height, "width": a.width, "latent_height": a.height // 8,
                  "latent_width": a.width // 8, "context_length": a.context},
        "warmup_runs": a.warmup, "runs": a.iters, "timing": "CUDA events around each step",
        "latency_ms": stats(ms), "wall_ms": stats(wall),
        "memory": {"arena_bytes": None, "arena_lower_bound_bytes": None, "weight_bytes": weight_bytes,
                   "workspace_bytes": None, "peak_bytes": torch.cuda.max_memory_allocated(),
                   "device_used_bytes": total - free, "device_total_bytes": total},
        "ops_per_step": None, "kernels_per_step": kernels,
        "device": {"name": torch.cuda.get_device_name(), "arch": "sm_%d%d" % torch.cuda.get_device_capability()},
    }
    text = json.dumps(report, indent=2)
    if a.json:
        with open(a.json, "w") as f:
            f.write(text + "\n")
    lat = report["latency_ms"]
    print("unet step, torch %s, batch %d, %dx%d: median %.2f ms (p10 %.2f, p90 %.2f), peak %.1f MiB, %d kernels"
          % (a.mode, a.batch, a.height, a.width, lat["median"], lat["p10"], lat["p90"],
             report["memory"]["peak_bytes"] / 2**20, kernels))


if __name__ == "__main__":
    main()
