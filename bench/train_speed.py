#!/usr/bin/env python3
"""Training throughput of the real trainer step against the machine's matmul peak and a plain PyTorch loop.

For the default config and the 6.4M reference preset: samples/s, achieved FLOP/s (6 x parameters x
tokens / s, padding included since it is computed) and the trainer's overhead over a minimal loop
(forward, loss, backward, AdamW step) on the same model and batches, measured side by side; and the
trainer's step with sdpa attention instead of the eager attention it uses.
"""
import argparse
import time

from common import ROOT, machine, matmul_peak, need_data, resolved_config, save


def measure(config_path, steps: int, warmup: int = 5) -> dict:
    import torch
    from hexadd.config.schema import TrainConfig
    from hexadd.config.files import load
    from hexadd.train.mixture import Replay
    from hexadd.train.prepare import prepare
    from hexadd.train.loop import batch_tensors, train_step

    cfg = load(TrainConfig, config_path, [f"data.dir={ROOT / 'data'}", f"tokenizer.dir={ROOT / 'tokenizer'}",
                                          "runtime.device=cpu"])
    run = prepare(cfg, log=lambda *_: None)
    model = run.model.train()
    t = cfg.training
    replay = Replay()  # empty: the step reads training rows only, as until the first fresh errors
    batches = [batch_tensors(run, replay, i, t) for i in range(warmup + steps)]
    tokens = sum(ids.numel() for ids, _, _ in batches[warmup:])

    def trainer_loop():
        for i in range(len(batches)):
            if i == warmup:
                t0 = time.perf_counter()
            train_step(run, *batch_tensors(run, replay, i, t), t.grad_clip, t.head_weight)
        return time.perf_counter() - t0

    # The reference: pre-sliced batches, forward with loss, backward, AdamW; nothing else.
    plain_batches = batches
    plain_opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def plain_loop():
        for i, (x, m, y) in enumerate(plain_batches):
            if i == warmup:
                t0 = time.perf_counter()
            model(x, attention_mask=m, labels=y).loss.backward()
            plain_opt.step()
            plain_opt.zero_grad(set_to_none=True)
        return time.perf_counter() - t0

    def sdpa_trainer_loop():  # the trainer picks eager attention; this is what sdpa would have given
        model.set_attn_implementation("sdpa")
        try:
            return trainer_loop()
        finally:
            model.set_attn_implementation("eager")

    # Alternate the loops so drift on a shared machine hits all alike; keep the best of each.
    times = [(trainer_loop(), plain_loop(), sdpa_trainer_loop()) for _ in range(2)]
    trainer_s, plain_s, sdpa_s = (min(t) for t in zip(*times))
    samples = steps * run.batches.batch_size
    return {"config": str(config_path.relative_to(ROOT)), "parameters": run.n_params, "batch_size": run.batches.batch_size,
            "steps": steps, "samples_per_s": samples / trainer_s, "tokens_per_s": tokens / trainer_s,
            "achieved_flops": 6 * run.n_params * tokens / trainer_s, "plain_samples_per_s": samples / plain_s,
            "trainer_overhead": trainer_s / plain_s - 1, "sdpa_samples_per_s": samples / sdpa_s}


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--steps", type=int, default=20)
    args = p.parse_args()
    need_data()
    peak32 = matmul_peak("float32")
    peak16 = matmul_peak("bfloat16")
    print(f"matmul peak: fp32 {peak32 / 1e9:.1f} GFLOP/s, bf16 {peak16 / 1e9:.1f} GFLOP/s ({machine()['cpu']}, {machine()['cores']} cores)")
    rows = []
    for cfg in (ROOT / "train_config.yaml", ROOT / "configs" / "reference-6.4M.yaml"):
        r = measure(cfg, args.steps)
        r["fraction_of_fp32_peak"] = r["achieved_flops"] / peak32
        rows.append(r)
        print(f"{r['config']}: {r['parameters'] / 1e6:.2f}M params, batch {r['batch_size']}: "
              f"{r['samples_per_s']:.0f} samples/s, {r['achieved_flops'] / 1e9:.1f} GFLOP/s = "
              f"{r['fraction_of_fp32_peak']:.0%} of fp32 peak; plain loop {r['plain_samples_per_s']:.0f} samples/s, "
              f"trainer overhead {r['trainer_overhead']:+.1%}; with sdpa attention {r['sdpa_samples_per_s']:.0f} samples/s")
    config = {"default": resolved_config(data_dir=ROOT / "data"),
              "6.4M": resolved_config(train_file=ROOT / "configs" / "reference-6.4M.yaml", data_dir=ROOT / "data")}
    save("train_speed", {"matmul_peak_fp32": peak32, "matmul_peak_bf16": peak16, "runs": rows}, config=config)


if __name__ == "__main__":
    main()
