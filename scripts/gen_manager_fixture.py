#!/usr/bin/env python3
"""Regenerates engine/tests/fixtures/managers_reference.safetensors: the reference SAUE/AAUE
managers (LooperXX/ManagerTower `src/modules/heads.py`, and `LayerAttention` from
`bert_model.py`) run in eval mode on random inputs with randomised parameters.

The reference is read from a git mirror at generation time (it is not part of this repository):
    REF_REPO=/path/to/ManagerTower.git PYTHONPATH=$(scripts/setup-python-peer.sh) \
        python3 scripts/gen_manager_fixture.py
"""

import math
import os
import re
import subprocess

import torch
import torch.nn as nn
from safetensors.torch import save_file


def show(path: str) -> str:
    repo = os.environ.get("REF_REPO", "/work/.mirror/LooperXX+ManagerTower/repo")
    return subprocess.run(
        ["git", "-C", repo, "show", f"HEAD:{path}"], check=True, capture_output=True, text=True
    ).stdout


def main() -> None:
    bert = show("src/modules/bert_model.py")
    layer_attention = bert[bert.index("class LayerAttention") : bert.index("class BertCrossLayer")]
    heads = re.sub(r"^from .*$", "", show("src/modules/heads.py"), flags=re.M)
    ns = {"torch": torch, "nn": nn, "math": math}
    exec(layer_attention, ns)
    exec(heads, ns)

    torch.manual_seed(0)
    out = {}
    b, n, l, lo, d = 2, 3, 5, 7, 16
    for weight in ["vector", "scalar"]:
        for kind, layer in [("SAUE", 0), ("SAUE", 1), ("AAUE", 1)]:
            cfg = {
                "manager_type": kind,
                "hidden_size": d,
                "manager_weight_type": weight,
                "manager_learnable": True,
                "manager_softmax_temperature": 0.7,
                "manager_softmax_temperature_learnable": True,
            }
            m = ns["Manager"](cfg, n, layer).eval()
            with torch.no_grad():
                for p in m.parameters():
                    p.add_(torch.randn_like(p) * 0.3)
            u, c, co = torch.randn(b, n, l, d), torch.randn(b, l, d), torch.randn(b, lo, d)
            with torch.no_grad():
                y = m(u, c if layer else 0, None, extra_query=co if layer else None, is_training=False)
            tag = f"{weight}_{kind}_{layer}"
            for name, p in m.named_parameters():
                out[f"{tag}.{name}"] = p.detach().clone().contiguous()
            out[f"{tag}.__U"], out[f"{tag}.__C"], out[f"{tag}.__Co"], out[f"{tag}.__y"] = u, c, co, y
    dest = os.path.join(os.path.dirname(__file__), "..", "engine", "tests", "fixtures")
    save_file(out, os.path.join(dest, "managers_reference.safetensors"))


if __name__ == "__main__":
    main()
