#!/usr/bin/env bash
# Installs libtorch (the torch==2.11.0 wheel from the Python package registry) into a per-user cache
# on first use, verifies it, and links it as .libtorch for cargo. Safe to run every time: a complete
# install is reused, a broken or half-finished one is removed and redone.
set -euo pipefail

TORCH_VERSION="2.11.0"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/towerlab"
dest="$cache/torch-$TORCH_VERSION"
marker="$dest/.towerlab-complete"

log() { printf 'towerlab setup: %s\n' "$*" >&2; }

# A complete install has the marker (written last, after verification) and the libraries it names.
verify() {
  local site="$1"
  [ -f "$site/torch/lib/libtorch_cpu.so" ] || return 1
  [ -f "$site/torch/lib/libtorch.so" ] || return 1
  [ -f "$site/torch/lib/libc10.so" ] || return 1
  [ -d "$site/torch/include/torch" ] || return 1
  grep -q "^__version__ = '$TORCH_VERSION" "$site/torch/version.py" 2>/dev/null || return 1
}

is_complete() {
  [ -f "$marker" ] && verify "$dest/site" || return 1
  # The marker records the file count at install time: a later partial deletion shows up here.
  local want have
  want="$(cat "$marker")"
  have="$(find "$dest/site/torch/lib" -type f | wc -l)"
  [ "$want" = "$have" ]
}

mkdir -p "$cache"
# One installer at a time (parallel `make` runs, several checkouts): the others wait here.
exec 9>"$cache/.setup-libtorch.lock"
flock 9

if ! is_complete; then
  # Downloads killed without a chance to clean up leave partial folders behind.
  find "$cache" -maxdepth 1 -name ".torch-$TORCH_VERSION.partial.*" -exec rm -rf {} + 2>/dev/null || true
  if [ -e "$dest" ]; then
    log "found an incomplete install at $dest; removing it and installing again"
    rm -rf "$dest"
  fi
  command -v python3 >/dev/null || { log "python3 is required to download torch==$TORCH_VERSION"; exit 1; }
  tmp="$(mktemp -d "$cache/.torch-$TORCH_VERSION.partial.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  log "downloading torch==$TORCH_VERSION from the Python package registry (about 2.5 GB download, 4.6 GB on disk; once)"
  python3 -m pip install --quiet --disable-pip-version-check --no-input --no-compile \
    --target "$tmp/site" "torch==$TORCH_VERSION"
  verify "$tmp/site" || { log "the downloaded torch in $tmp/site is incomplete"; exit 1; }
  find "$tmp/site/torch/lib" -type f | wc -l > "$tmp/.towerlab-complete"
  # Rename is atomic: a concurrent or interrupted run never sees a half-written $dest.
  mv "$tmp" "$dest"
  trap - EXIT
  log "installed libtorch $TORCH_VERSION into $dest"
fi

# .libtorch is what .cargo/config.toml points LIBTORCH at; relink when it is stale.
link="$repo/.libtorch"
target="$dest/site/torch"
if [ "$(readlink "$link" 2>/dev/null)" != "$target" ]; then
  rm -f "$link"
  ln -s "$target" "$link"
fi
