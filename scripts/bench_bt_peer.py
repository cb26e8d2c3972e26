#!/usr/bin/env python3
"""Peer side of `cargo bench -p engine --bench bt_train_step`.

Times the training step (forward + ITM cross-entropy + backward + AdamW) of Hugging Face's
`BridgeTowerModel` with an ITM head (`Linear(2H, 2)` on `pooler_output`), built from scratch
(no download) with the shapes given as JSON on the command line, on the CPU or the first CUDA
device, in fp32 or (on CUDA) under bf16 autocast. Prints one JSON line.

Run with `PYTHONPATH=$(scripts/setup-python-peer.sh)`.
"""

import contextlib
import json
import sys
import time

import torch
from torch import nn
from transformers import BridgeTowerConfig, BridgeTowerModel


def main() -> None:
    c = json.loads(sys.argv[1])
    torch.set_num_threads(c["threads"])
    torch.manual_seed(0)
    config = BridgeTowerConfig(
        hidden_size=c["hidden"],
        num_attention_heads=c["cross_heads"],
        num_hidden_layers=c["cross_layers"],
        text_config={
            "vocab_size": c["vocab"],
            "hidden_size": c["text_width"],
            "num_hidden_layers": c["text_layers"],
            "num_attention_heads": c["text_heads"],
            "intermediate_size": c["text_intermediate"],
            "max_position_embeddings": c["max_pos"],
        },
        vision_config={
            "hidden_size": c["vit_width"],
            "num_hidden_layers": c["vit_layers"],
            "image_size": c["image_size"],
            "patch_size": c["patch"],
        },
    )
    device = torch.device(c.get("device", "cpu"))
    model = BridgeTowerModel(config).to(device)
    head = nn.Linear(2 * c["hidden"], 2).to(device)
    model.train()
    params = list(model.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=1e-5, betas=(0.9, 0.98), eps=1e-8, weight_decay=0.01)

    b, length = c["batch"], c["text_len"]
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(3, c["vocab"], (b, length), generator=gen)
    mask = torch.ones(b, length, dtype=torch.long)
    for i in range(b):
        n = length - (i * 3) % (length // 2)
        mask[i, n:] = 0
        ids[i, n:] = 1
    ids[:, 0] = 0
    pixels = torch.randn(b, 3, c["image_size"], c["image_size"], generator=gen)
    labels = torch.randint(0, 2, (b,), generator=gen)
    ids, mask, pixels, labels = (t.to(device) for t in (ids, mask, pixels, labels))
    bf16 = bool(c.get("bf16")) and device.type == "cuda"

    def autocast():
        if bf16:
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def step() -> None:
        with autocast():
            out = model(input_ids=ids, attention_mask=mask, pixel_values=pixels)
            loss = nn.functional.cross_entropy(head(out.pooler_output), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(c["warmup"]):
        step()
    sync()
    times = []
    for _ in range(c["steps"]):
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    times.sort()
    median = times[len(times) // 2]
    print(
        json.dumps(
            {
                "step_s": median,
                "samples_per_s": b / median,
                "params": sum(p.numel() for p in params),
                "attn_implementation": getattr(config, "_attn_implementation", None),
                "device": str(device),
                "bf16": bf16,
            }
        )
    )


if __name__ == "__main__":
    main()
