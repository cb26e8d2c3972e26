#!/usr/bin/env python3
"""The Python peer of `cargo run -p engine --example flops -- --compare`: model FLOPs per sample
counted by PyTorch's `torch.utils.flop_counter.FlopCounterMode` over Hugging Face's
`BridgeTowerModel` (BT) and over a ManagerTower (AAUE) assembled from the same Hugging Face
blocks with the reference's managers written out below (Hugging Face has no ManagerTower).

No download: the models are built from configs at the paper's base shapes (CLIP ViT-B/16,
RoBERTa-base, 6 cross-modal layers of width 768) with random weights and run on the CPU (the
`meta` device cannot run Hugging Face's mask building, which reads values).

Attention runs as plain matrix products (`attn_implementation="eager"` for the text and
cross-modal layers, the math kernel of `scaled_dot_product_attention` for the ViT's
`nn.MultiheadAttention`), so FlopCounterMode sees every `Q·Kᵀ` and `P·V` as a `bmm` and counts
its backward as twice its forward, the model-FLOPs convention of our count.

Prints one JSON object per line: {"model", "image_size", "text_len", "forward", "training"} with
FLOPs per sample ("training": forward + backward of a loss on the pooled output).

Run: PYTHONPATH="$(scripts/setup-python-peer.sh)" python3 scripts/flops_peer.py [--image-size 288 384]
"""

import argparse
import json
import math
import sys

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from transformers import BridgeTowerConfig, BridgeTowerModel


def base_config(image_size):
    cfg = BridgeTowerConfig(
        text_config={"max_position_embeddings": 514, "vocab_size": 50265},
        vision_config={"image_size": image_size, "patch_size": 16, "hidden_size": 768},
        num_hidden_layers=6,
        hidden_size=768,
    )
    cfg._attn_implementation = "eager"
    cfg.text_config._attn_implementation = "eager"
    cfg.vision_config._attn_implementation = "eager"
    return cfg


class SAUE(nn.Module):
    """`heads.SAUE` of the reference (spec 1.5): static softmaxed weights over the N experts,
    plus a raw weight on the previous cross-modal output from layer 1 on. Elementwise only."""

    def __init__(self, d, n, previous):
        super().__init__()
        self.n, self.previous = n, previous
        self.layer_scores = nn.Parameter(torch.full((1, n + previous, 1, d), 1.0 / n))
        self.norms = nn.ModuleList(nn.LayerNorm(d) for _ in range(n + previous))
        self.softmax_temperature = nn.Parameter(torch.ones(1))

    def forward(self, experts, prev, other):
        h = torch.stack([ln(experts[:, i]) for i, ln in enumerate(self.norms[: self.n])], 1)
        w = torch.softmax(self.layer_scores[:, : self.n] / self.softmax_temperature, dim=1)
        out = (w * h).sum(1)
        if self.previous:
            out = out + self.layer_scores[:, self.n] * self.norms[self.n](prev)
        return out


class AAUE(nn.Module):
    """`heads.AAUE` of the reference (spec 1.5): per-token expert weights from a cross-modal
    fused query: single-head `LayerAttention` (q_proj, k_proj, no value projection, scale
    1/sqrt(D)) over the other modality, concatenated with the query, then
    `linear_controller(2D -> N)`."""

    def __init__(self, d, n):
        super().__init__()
        self.n, self.d = n, d
        self.layer_scores_cross = nn.Parameter(torch.ones(1, 1, d))
        self.linear_controller = nn.Linear(2 * d, n)
        self.q_proj = nn.Linear(d, d)
        self.k_proj = nn.Linear(d, d)
        self.norms = nn.ModuleList(nn.LayerNorm(d) for _ in range(n + 1))
        self.extra_query_LayerNorm = nn.LayerNorm(d)
        self.softmax_temperature = nn.Parameter(torch.ones(1))

    def forward(self, experts, prev, other):
        h = torch.stack([ln(experts[:, i]) for i, ln in enumerate(self.norms[: self.n])], 1)
        q = self.norms[self.n](prev)
        e = self.extra_query_LayerNorm(other)
        scores = torch.matmul(self.q_proj(q), self.k_proj(e).transpose(-1, -2)) / math.sqrt(self.d)
        fused = torch.cat([torch.matmul(torch.softmax(scores, -1), e), q], -1)
        g = self.linear_controller(fused).transpose(1, 2).unsqueeze(-1)  # [B, N, L, 1]
        w = torch.softmax(g / self.softmax_temperature, dim=1)
        return (w * h).sum(1) + self.layer_scores_cross * q


class ManagerTowerPeer(nn.Module):
    """ManagerTower's `infer` (spec 1.6) on Hugging Face's encoders and cross layers: every
    uni-modal layer first, the top N of each projected by the shared transform, then per
    cross-modal layer the managers and both towers in parallel, then the poolers."""

    def __init__(self, cfg, managed=6, manager="AAUE"):
        super().__init__()
        bt = BridgeTowerModel(cfg)
        self.bt, self.managed = bt, managed
        d, layers = cfg.hidden_size, cfg.num_hidden_layers

        def make(i):
            # Layer 0 has no previous cross-modal output: SAUE without its cross slot.
            if i == 0:
                return SAUE(d, managed, 0)
            return SAUE(d, managed, 1) if manager == "SAUE" else AAUE(d, managed)

        def tower():
            return nn.ModuleList(make(i) for i in range(layers))

        self.text_managers, self.image_managers = tower(), tower()
        self.layer_embeddings_text = nn.Embedding(12, d)
        self.layer_embeddings_image = nn.Embedding(12, d)

    def forward(self, input_ids, attention_mask, pixel_values):
        bt = self.bt
        from transformers.masking_utils import create_bidirectional_mask

        text = bt.text_model.embeddings(input_ids=input_ids)
        mask = create_bidirectional_mask(
            config=bt.config, inputs_embeds=text[:, 0:1, :], attention_mask=attention_mask
        )
        texts = []
        for layer in bt.text_model.encoder.layer:
            text = layer(text, mask)
            text = text[0] if isinstance(text, tuple) else text
            texts.append(text)
        image = bt.vision_model.visual.forward_pre(pixel_values)
        images = []
        for block in bt.vision_model.visual.transformer.resblocks:
            image = block(image)
            images.append(bt.vision_model.visual.forward_post(image))
        n = self.managed
        tt = bt.token_type_embeddings.weight
        t = bt.cross_modal_text_transform(torch.stack(texts[-n:], 1))
        v = bt.cross_modal_image_transform(torch.stack(images[-n:], 1))
        t = t + tt[0] + self.layer_embeddings_text.weight[-n:][None, :, None, :]
        v = v + tt[1] + self.layer_embeddings_image.weight[-n:][None, :, None, :]
        x = y = None
        for tl, il, tm, im in zip(
            bt.cross_modal_text_layers, bt.cross_modal_image_layers,
            self.text_managers, self.image_managers,
        ):
            x_, y_ = tm(t, x, y), im(v, y, x)
            x = tl(x_, y_, attention_mask=mask)[0]
            y = il(y_, x_, encoder_attention_mask=mask)[0]
        return bt.get_cls_features(x, y)


def count(model, inputs, train):
    """FLOPs of one forward (and backward) of `model` on `inputs`."""
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        if train:
            out = model(**inputs)
            pooled = out.pooler_output if hasattr(out, "pooler_output") else out
            pooled.sum().backward()
        else:
            with torch.no_grad():
                model(**inputs)
    return counter.get_total_flops()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image-size", type=int, nargs="+", default=[288, 384])
    ap.add_argument("--text-len", type=int, default=50)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--models", nargs="+", default=["BT", "AAUE"], choices=["BT", "AAUE", "SAUE"])
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.manual_seed(0)
    for size in args.image_size:
        cfg = base_config(size)
        for name in args.models:
            with torch.device(args.device):
                model = BridgeTowerModel(cfg) if name == "BT" else ManagerTowerPeer(cfg, manager=name)
                model.train()
                inputs = {
                    "input_ids": torch.randint(3, 50265, (args.batch, args.text_len)),
                    "attention_mask": torch.ones(args.batch, args.text_len, dtype=torch.long),
                    "pixel_values": torch.randn(args.batch, 3, size, size),
                }
            # Dropout changes no FLOPs; eval keeps the meta run free of random masks.
            model.eval()
            fwd = count(model, inputs, train=False)
            trn = count(model, inputs, train=True)
            print(json.dumps({
                "model": name,
                "image_size": size,
                "text_len": args.text_len,
                "forward": fwd / args.batch,
                "training": trn / args.batch,
            }))
            sys.stdout.flush()


if __name__ == "__main__":
    main()
