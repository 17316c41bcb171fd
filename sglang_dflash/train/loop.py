"""The training loop: batches, AdamW with warmup + cosine, clipping, eval, checkpoint/resume."""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .blocks import default_gamma
from .evaluate import acceptance
from .step import Batch, block_loss, collate

CHECKPOINT = "checkpoint.pt"
_STOP = {"requested": False}


def request_stop(*_) -> None:
    """Make the running loop stop after its current step, then checkpoint and return as usual
    (the CLI installs this for SIGTERM, so a killed time-boxed job still exports its drafter)."""
    _STOP["requested"] = True


@dataclass
class LoopConfig:
    steps: int
    batch_size: int = 16
    num_anchors: int = 32
    lr: float = 6e-4
    min_lr_ratio: float = 0.1
    warmup: float = 0.03  # fraction of steps (or a step count if > 1)
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    gamma: float | None = None
    seed: int = 0
    autocast_dtype: str | None = None
    log_every: int = 10
    eval_every: int = 0
    save_every: int = 500
    max_minutes: float | None = None
    new_schedule: bool = False  # on resume: run warmup + cosine again instead of continuing it
    eval_prompts: list = field(default_factory=list)
    eval_block_sizes: tuple = ()
    eval_max_new_tokens: int = 128
    target_labels: bool = False  # learn the target's greedy next tokens instead of the text's
    train_block_sizes: tuple[int, ...] | None = None  # per-anchor block lengths (None: the config's)


def lr_at(step: int, progress: float, cfg: LoopConfig) -> float:
    """Linear warmup, then cosine down to lr * min_lr_ratio. `progress` in [0, 1] is how far the
    run is (steps done / steps, or time used / --max-minutes if that is further), so a run cut by
    its time budget still ends at the floor. `warmup` > 1 counts steps, else a fraction."""
    if cfg.warmup > 1:
        if step < cfg.warmup:
            return cfg.lr * (step + 1) / cfg.warmup
        warm = min(cfg.warmup / max(cfg.steps, 1), 0.99)
    else:
        warm = cfg.warmup
        if progress < warm:
            return cfg.lr * max(progress / warm, 1.0 / max(cfg.steps, 1))
    t = min(1.0, (progress - warm) / max(1e-9, 1 - warm))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


class Batches:
    """Endless shuffled batches; similar lengths are grouped to save padding. Deterministic in
    (seed, epoch) so a resumed run continues the same stream."""

    def __init__(self, examples, batch_size: int, pad_id: int, seed: int):
        self.examples, self.bs, self.pad, self.seed = examples, batch_size, pad_id, seed

    def epoch(self, e: int) -> list[list[int]]:
        r = random.Random(self.seed * 100003 + e)
        order = list(range(len(self.examples)))
        r.shuffle(order)
        group = self.bs * 32
        batches = []
        for s in range(0, len(order), group):
            chunk = sorted(order[s: s + group], key=lambda i: len(self.examples[i]))
            batches += [chunk[j: j + self.bs] for j in range(0, len(chunk), self.bs)]
        r.shuffle(batches)
        return batches

    def stream(self, start_step: int):
        per = len(self.epoch(0))
        e, i = divmod(start_step, per)
        while True:
            for idx in self.epoch(e)[i:]:
                yield collate([self.examples[k] for k in idx], self.pad)
            e, i = e + 1, 0


def save_checkpoint(path: Path, drafter, opt, step: int, extra: dict) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"drafter": drafter.state_dict(), "optimizer": opt.state_dict(), "step": step,
                "config": drafter.config.to_dict(), **extra}, tmp)
    tmp.replace(path)


def train_loop(drafter, target, examples, out_dir: Path, cfg: LoopConfig, *, pad_id: int, device,
               resume: bool = False, log=print) -> dict:
    """Train `drafter` in place; returns a summary. Writes out_dir/checkpoint.pt and train_log.jsonl."""
    out_dir.mkdir(parents=True, exist_ok=True)
    gamma = cfg.gamma or default_gamma(drafter.config.block_size)
    params = [p for p in drafter.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.95),
                            fused=(torch.device(device).type == "cuda"))
    step = 0
    start_progress = 0.0
    ckpt = out_dir / CHECKPOINT
    history = []
    if resume:
        if not ckpt.is_file():
            raise FileNotFoundError(f"--resume: no {ckpt}")
        state = torch.load(ckpt, map_location=device, weights_only=False)
        if state["config"] != drafter.config.to_dict():
            raise ValueError(f"--resume: {ckpt} was trained with another drafter config; use the same options")
        drafter.load_state_dict(state["drafter"])
        opt.load_state_dict(state["optimizer"])
        step = state["step"]
        history = state.get("history", [])
        start_progress = 0.0 if cfg.new_schedule else state.get("progress", step / cfg.steps)
        log(f"resumed from {ckpt} at step {step}")
    start_step = step

    def progress() -> float:
        p = (step - start_step) / max(cfg.steps - start_step, 1)
        if cfg.max_minutes:
            p = max(p, (time.time() - t_start) / (60 * cfg.max_minutes))
        return min(1.0, start_progress + (1 - start_progress) * p)

    if cfg.new_schedule:
        cfg.steps += step
    if step >= cfg.steps:
        log(f"nothing to do: checkpoint is at step {step} >= --steps {cfg.steps}")
        return {"steps": step, "history": history}

    ac = {"bfloat16": torch.bfloat16, "float16": torch.float16, None: None}[cfg.autocast_dtype]
    gen = torch.Generator().manual_seed(cfg.seed * 7 + step)
    batches = Batches(examples, cfg.batch_size, pad_id, cfg.seed).stream(step)
    drafter.train()
    t_start = time.time()
    t_log, tok_log = time.time(), 0
    logf = open(out_dir / "train_log.jsonl", "a")
    bar = tqdm(total=cfg.steps, initial=step, desc="train", unit="step", dynamic_ncols=True)
    acc_loss = acc_acc = acc_tau = 0.0
    acc_n = 0
    stop_reason = "steps"
    try:
        while step < cfg.steps:
            batch: Batch = next(batches).to(device)
            for g in opt.param_groups:
                g["lr"] = lr_at(step, progress(), cfg)
            res = block_loss(drafter, target, batch, num_anchors=cfg.num_anchors, gamma=gamma,
                             generator=gen, autocast_dtype=ac, target_labels=cfg.target_labels,
                             block_sizes=cfg.train_block_sizes)
            if res is None:
                continue
            opt.zero_grad(set_to_none=True)
            res.loss.backward()
            gnorm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip) if cfg.grad_clip > 0 else None
            opt.step()
            step += 1
            tok_log += batch.n_tokens
            acc_loss += res.loss.detach()  # tensors: read back only when a log line is written
            acc_acc += res.accuracy
            acc_tau += res.tau
            acc_n += 1
            bar.update(1)
            if step % cfg.log_every == 0 or step == cfg.steps:
                dt = time.time() - t_log
                row = {"step": step, "loss": float(acc_loss) / acc_n, "acc": float(acc_acc) / acc_n,
                       "tau_train": float(acc_tau) / acc_n,
                       "lr": opt.param_groups[0]["lr"], "tok_s": tok_log / max(dt, 1e-9),
                       "grad_norm": float(gnorm) if gnorm is not None else None,
                       "elapsed_s": time.time() - t_start}
                bar.set_postfix(loss=f"{row['loss']:.3f}", acc=f"{row['acc']:.3f}", tau=f"{row['tau_train']:.2f}",
                                tok_s=f"{row['tok_s']:.0f}")
                logf.write(json.dumps(row) + "\n")
                logf.flush()
                acc_loss = acc_acc = acc_tau = 0.0
                acc_n, t_log, tok_log = 0, time.time(), 0
            if cfg.eval_every and cfg.eval_prompts and step % cfg.eval_every == 0 and step < cfg.steps:
                history.append(run_eval(drafter, target, cfg, step, log, logf))
            if cfg.save_every and step % cfg.save_every == 0:
                save_checkpoint(ckpt, drafter, opt, step, {"history": history, "progress": progress()})
            if _STOP["requested"] and step < cfg.steps:
                stop_reason = "signal"
                log(f"\nstopping at step {step}: asked to stop (SIGTERM)")
                break
            if cfg.max_minutes and progress() >= 1.0 and step < cfg.steps:
                stop_reason = "time"
                log(f"\nstopping at step {step}: --max-minutes {cfg.max_minutes} reached")
                break
    finally:
        bar.close()
    save_checkpoint(ckpt, drafter, opt, step, {"history": history, "progress": progress()})
    summary = {"steps": step, "stop": stop_reason, "train_seconds": time.time() - t_start, "gamma": gamma}
    if cfg.eval_prompts:
        history.append(run_eval(drafter, target, cfg, step, log, logf))
        summary["eval"] = history[-1]
    summary["history"] = history
    logf.close()
    return summary


def run_eval(drafter, target, cfg: LoopConfig, step: int, log, logf) -> dict:
    drafter.eval()
    row = {"step": step}
    for bs in cfg.eval_block_sizes or (drafter.config.block_size,):
        r = acceptance(target, drafter, cfg.eval_prompts, block_size=bs, max_new_tokens=cfg.eval_max_new_tokens)
        row[f"tau_b{bs}"] = r["mean_acceptance"]
    drafter.train()
    log(f"\n[eval step {step}] " + ", ".join(f"{k}={v:.3f}" for k, v in row.items() if k != "step"))
    logf.write(json.dumps({"eval": row}) + "\n")
    logf.flush()
    return row


def loop_config_dict(cfg: LoopConfig) -> dict:
    d = asdict(cfg)
    d["eval_prompts"] = len(cfg.eval_prompts)
    return d
