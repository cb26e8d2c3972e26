#!/usr/bin/env bash
# Python peers for parity fixtures and side-by-side benchmarks: Hugging Face transformers (pinned)
# on top of the torch==2.11.0 that setup-libtorch.sh installed. Installed once into the per-user
# cache; prints the PYTHONPATH to use. Only the fixture generator and the benchmarks need it; the
# test suite reads committed fixtures and never runs Python.
set -euo pipefail

TRANSFORMERS_VERSION="5.23.0"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$repo/scripts/setup-libtorch.sh"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/towerlab"
torch_site="$cache/torch-2.11.0/site"
dest="$cache/py-peer-transformers-$TRANSFORMERS_VERSION"
marker="$dest/.towerlab-complete"

if [ ! -f "$marker" ]; then
  rm -rf "$dest"
  tmp="$(mktemp -d "$cache/.py-peer.partial.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  echo "towerlab setup: installing transformers==$TRANSFORMERS_VERSION, numpy, pandas, safetensors (once)" >&2
  # torch comes from torch_site; keep pip from pulling a second copy.
  PYTHONPATH="$torch_site" python3 -m pip install --quiet --disable-pip-version-check --no-input \
    --target "$tmp/site" "transformers==$TRANSFORMERS_VERSION" "safetensors" "numpy" "pandas" \
    --no-deps
  PYTHONPATH="$torch_site" python3 -m pip install --quiet --disable-pip-version-check --no-input \
    --target "$tmp/site" "huggingface-hub" "tokenizers" "regex" "pyyaml" "packaging" "tqdm" \
    "requests" "python-dateutil" "tzdata" "typer" "httpx" "hf-xet" 2>/dev/null || true
  PYTHONPATH="$tmp/site:$torch_site" python3 -c "import transformers, torch, pandas, safetensors" >&2
  touch "$tmp/.towerlab-complete"
  mv "$tmp" "$dest"
  trap - EXIT
fi
echo "$dest/site:$torch_site"
