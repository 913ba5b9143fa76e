"""Where a DNABERT-3 training step's time goes on a GPU: the step as the training loop takes it, and
the same step without what is not the model's arithmetic.

At batch 32 x 81 tokens a base-size step is about 1.3 TFLOP, a few milliseconds of an H200's bf16
rate, yet it takes about 40 ms (`gpu_check`): the step is bound by launching kernels, not by the GPU.
This measures, at bf16 autocast with SDPA attention:

- `loop`: as `rbp.train` steps (foreach AdamW, gradient clipping, the schedule, the per-step check
  that the loss is finite, which waits for the GPU);
- `no-sync`: the same without that per-step wait;
- `fused`: and AdamW's fused kernel (`fused=True`);
- `compiled`: and `torch.compile` of the model (CUDA only);
- `loop` at batch 128: the rate the GPU reaches when a step carries more work;

and, with torch's profiler over `loop`, the GPU's busy time per step against the step's wall time.
With `--data DIR` (a positives/negatives folder), also one fold of the paper recipe from scratch,
timed by part: building the model, the training epochs, the validation and test predictions.
Needs only the core of rbp; writes `--json` after each part (each variant is a part, `NAME@BATCH`).

    python bench/dnabert_step_variants.py [--size base] [--steps 30] [--data DIR] [--json out.json]
"""

from __future__ import annotations

import argparse
import functools
import json
import tempfile
import time
from pathlib import Path

import torch
from bench_dnabert import batch_of
from common import machine, record_part, sync, time_steps, timed_parts

from rbp.dnabert import DNABERTParams, scratch_model
from rbp.optim import make_optimizer, make_schedule
from rbp.train import loss_of, seed_everything


def _stepper(size, device, batch, wait, fused, compiled):
    seed_everything(0)
    cfg = DNABERTParams(grad_clip=1.0)
    model = scratch_model(3, size, attn_implementation="sdpa").to(device).train()
    optimizer = make_optimizer(model, cfg)
    if fused:  # the same groups, AdamW's fused kernel
        optimizer = torch.optim.AdamW(optimizer.param_groups, lr=cfg.lr, fused=True)
    schedule = make_schedule(optimizer, cfg, 10_000)
    forward = torch.compile(model) if compiled else model
    inputs, labels = batch_of(device, batch)
    loss_sum = torch.zeros((), device=device)

    def step():
        nonlocal loss_sum
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = forward(**inputs).logits
        loss = loss_of(logits, labels)
        if wait and not torch.isfinite(loss):
            raise RuntimeError("diverged")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        schedule.step()
        loss_sum += loss.detach() * batch

    return step


def gpu_busy(step, device, steps=10) -> dict:
    """Kernel time per step (the sum of the GPU's self time) against wall time per step."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    for _ in range(3):
        step()
    sync(device)
    with profile(activities=activities) as prof:
        start = time.perf_counter()
        for _ in range(steps):
            step()
        sync(device)
        wall = (time.perf_counter() - start) / steps
    events = prof.key_averages()
    kernel_us = sum(getattr(e, "self_device_time_total", 0) or 0 for e in events)
    launches = sum(e.count for e in events if "LaunchKernel" in e.key or "cudaLaunch" in e.key)
    return {"wall_ms_profiled": round(1000 * wall, 1), "gpu_busy_ms": round(kernel_us / 1000 / steps, 1),
            "kernel_launches": round(launches / steps)}


def one_fold(data: Path, size: str, device: torch.device, work: Path) -> dict:
    """The first fold of `params/paper.yaml` (scratch), with the time of each part of the fold."""
    from rbp.cv import cross_validate
    from rbp.data import Folds, prepare_folds
    from rbp.families import make_family
    from rbp.params import load_params

    params = load_params(Path(__file__).resolve().parent.parent / "params" / "paper.yaml",
                         ["dnabert.init=scratch", f"dnabert.size={size}", "notebooks=[01_preprocess, 02_dnabert_cv]",
                          f"device={device.type}", f"data_dir={data}"])
    prepare_folds(params, work / "run")
    folds = Folds(work / "run" / "folds")
    family = make_family("dnabert", params)
    start = time.perf_counter()
    with timed_parts(family, device) as spent:
        result = cross_validate(family, folds, params.dnabert, device, params.seed, progress=False,
                                only=folds.fold_numbers[:1])[0]
    total = time.perf_counter() - start
    return {"seconds": round(total, 1), "parts": {k: round(v, 1) for k, v in spent.items()},
            "other": round(total - sum(spent.values()), 1), "epochs": len(result.training.history),
            "train_rows": int(len(folds.positions(result.fold, "train"))),
            "test_auc": round(result.metrics["test_auc"], 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="base")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--data", type=Path, help="a positives/negatives folder: also time one fold's parts")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    report = {"machine": machine(), "torch": torch.__version__, "size": args.size, "failed": {}}
    variants = [("loop", 32, True, False, False), ("no-sync", 32, False, False, False),
                ("fused", 32, False, True, False), ("loop", 128, True, False, False)]
    if device.type == "cuda":
        variants.insert(3, ("compiled", 32, False, True, True))

    def save(report):
        if args.json:
            args.json.write_text(json.dumps(report, indent=2))

    def variant(batch, wait, fused, compiled):
        start = time.perf_counter()
        seconds = time_steps(_stepper(args.size, device, batch, wait, fused, compiled), device, args.steps)
        return {"batch": batch, "step_ms": round(1000 * seconds, 1), "seq_per_s": round(batch / seconds, 1),
                "seconds_with_setup": round(time.perf_counter() - start, 1)}

    for name, batch, wait, fused, compiled in variants:
        record_part(report, f"{name}@{batch}", functools.partial(variant, batch, wait, fused, compiled), save)
    record_part(report, "profile_loop", lambda: gpu_busy(_stepper(args.size, device, 32, True, False, False), device),
                save)
    if args.data:
        def fold():
            with tempfile.TemporaryDirectory() as work:
                return one_fold(args.data, args.size, device, Path(work))

        record_part(report, "fold", fold, save)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
