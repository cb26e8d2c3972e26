#!/usr/bin/env bash
# Builds what scripts/gpu-check.sh runs on a device machine, into gpu-bin/ (git-ignored; carry
# it): the release `towerlab` binary and the BridgeTower training-step benchmark, stripped so
# both fit the carry limit. Run here, from the repository root.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release -p app --bin towerlab
bench=$(cargo bench -p engine --bench bt_train_step --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "bt_train_step" and m.get("executable"):
        print(m["executable"])')
rm -rf gpu-bin
mkdir -p gpu-bin
cp target/release/towerlab gpu-bin/towerlab
cp "$bench" gpu-bin/bt_train_step
strip gpu-bin/towerlab gpu-bin/bt_train_step
ls -la gpu-bin
