#!/usr/bin/env python3
"""Block-window attention against the dense (B, H, T, T) path it replaced, and against PyTorch's FlexAttention,
on this machine, side by side in one run. Problems `+A+B+C+` with operands of `digits` digits; 4 heads of 32.

For each length: milliseconds a call (the median of several), forward only and (at the training length)
forward plus backward, and each path's peak memory measured in a fresh process. The window keeps at most
4 (2D + 1) keys a query; the dense path builds a (B, H, T, T) bias; FlexAttention (a score_mod for the bias, a
block mask for the window) runs eagerly (which materializes the scores) or compiled (forward only on a CPU:
it has no backward there).

    python3 bench/attention_speed.py
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from common import ROOT, save

H, HD, D = 4, 32, 2
PATHS = ("dense", "window", "flex_eager", "flex_compiled")


def problem(B: int, digits: int):
    """Block positions, numbers and validity of B rows `+A+B+C+`, and random queries, keys and values."""
    import torch
    pos, num = [], []
    for k, n in enumerate((digits, digits, digits + 1, 0)):
        pos += [0] + list(range(1, n + 1))
        num += [k] * (n + 1)
    T = len(pos)
    pos = torch.tensor(pos).expand(B, T).contiguous()
    num = torch.tensor(num).expand(B, T).contiguous()
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(B, H, T, HD, generator=g) for _ in range(3))
    return pos, num, torch.ones(B, T, dtype=torch.long), q, k, v


def runner(path: str, pos, num, valid, q, k, v, table):
    import torch
    from hexadd.modeling import model as modeling
    from hexadd.modeling.positions import block_window
    B, T = pos.shape
    if path == "dense":
        def run():
            d = pos[:, None, :] - pos[:, :, None]
            allowed = torch.ones(T, T, dtype=torch.bool).tril()[None] & (d.abs() <= D)
            bias = table[:, d.clamp(-D, D) + D].transpose(0, 1).masked_fill(~allowed[:, None], torch.finfo(q.dtype).min)
            return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return run
    if path == "window":
        module = torch.nn.Module()
        module.training = torch.is_grad_enabled()

        def run():
            window = block_window(pos, num, valid, D).with_bias(table)
            return modeling.block_window_attention(module, q, k, v, scaling=HD ** -0.5, window=window)[0]
        return run
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    def mask_mod(b, h, qi, ki):
        return (ki <= qi) & ((pos[b, ki] - pos[b, qi]).abs() <= D)

    def score_mod(score, b, h, qi, ki):
        return score + table[h, (pos[b, ki] - pos[b, qi]).clamp(-D, D) + D]

    attend = torch.compile(flex_attention) if path == "flex_compiled" else flex_attention

    def run():
        block_mask = create_block_mask(mask_mod, B, None, T, T, device="cpu")
        return attend(q, k, v, score_mod=score_mod, block_mask=block_mask)
    return run


def child(path: str, B: int, digits: int, backward: bool, repeats: int) -> dict:
    import torch
    torch.set_num_threads(os.cpu_count())
    pos, num, valid, q, k, v = problem(B, digits)
    table = torch.randn(H, 2 * D + 1)
    if backward:
        for t in (q, k, v, table):
            t.requires_grad_(True)
    run = runner(path, pos, num, valid, q, k, v, table)
    first = time.perf_counter()
    try:
        out = run()
        if backward:
            out.square().sum().backward()
    except Exception as e:  # FlexAttention's backward on a CPU, for one
        return {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"}
    first = time.perf_counter() - first
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = run()
        if backward:
            out.square().sum().backward()
        times.append(time.perf_counter() - t0)
    return {"ms": 1e3 * statistics.median(times), "first_call_s": first, "tokens": pos.shape[1], "rows": B}


def measure(path, B, digits, backward, repeats):
    cmd = [sys.executable, __file__, "--child", path, "--rows", str(B), "--digits", str(digits), "--repeats", str(repeats)]
    cmd += ["--backward"] if backward else []
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    out, err = proc.stdout.read(), proc.stderr.read()
    if status:
        return {"error": f"exit {status >> 8}: {err.strip().splitlines()[-1][:200] if err.strip() else ''}"}
    r = json.loads(out.strip().splitlines()[-1])
    r["peak_rss_mb"] = usage.ru_maxrss / 1024
    return r


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--child", choices=PATHS, help=argparse.SUPPRESS)
    p.add_argument("--rows", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--digits", type=int, default=8, help=argparse.SUPPRESS)
    p.add_argument("--backward", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--repeats", type=int, default=5, help=argparse.SUPPRESS)
    p.add_argument("--name", default="attention_speed")
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.rows, args.digits, args.backward, args.repeats)))
        return
    # (rows, digits, forward and backward): the training batch, then forward passes at growing lengths.
    cases = [(128, 8, True), (128, 8, False), (16, 64, False), (4, 512, False), (1, 2048, False), (1, 4096, False)]
    results = []
    for B, digits, backward in cases:
        row = {"rows": B, "digits": digits, "backward": backward, "paths": {}}
        for path in PATHS:
            if path == "dense" and digits > 2048:
                row["paths"][path] = {"skipped": "a (B, H, T, T) bias of this length takes several GB"}
                continue
            if path.startswith("flex") and digits > 2048:
                row["paths"][path] = {"skipped": "create_block_mask evaluates every (query, key) pair"}
                continue
            r = measure(path, B, digits, backward, 5 if digits < 1024 else 2)
            row["paths"][path] = r
            shown = f"{r['ms']:.1f} ms, peak RSS {r['peak_rss_mb']:.0f} MB" if "ms" in r else r.get("error", r.get("skipped"))
            print(f"{B:>4} rows x {digits:>5} digits{' fwd+bwd' if backward else ''} {path:>14}: {shown}", flush=True)
        results.append(row)
    # No trained model: random tensors of the default model's attention shape (heads, head size, window).
    save(args.name, {"heads": H, "head_dim": HD, "window": D, "cases": results},
         config={"attention": {"heads": H, "head_dim": HD, "window": D}})


if __name__ == "__main__":
    main()
