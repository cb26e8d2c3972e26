#!/usr/bin/env bash
# The Python peer of `cargo bench -p app --bench convert`: pandas + pyarrow (+ numpy), pinned to the
# oldest releases with wheels for this Python that keep the reference writers' semantics (the
# reference pins pandas 1.4.1 / pyarrow 7.0.0, which have no wheels past Python 3.10; pandas 3
# changed the default string dtype). Installed once into the per-user cache from the package
# registry; prints the PYTHONPATH to use. Only the benchmark needs it; the tests never run Python.
set -euo pipefail

PANDAS_VERSION="1.5.3"
PYARROW_VERSION="11.0.0"
NUMPY_VERSION="1.24.4"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/towerlab"
dest="$cache/py-peer-arrow-pandas$PANDAS_VERSION-pyarrow$PYARROW_VERSION"
marker="$dest/.towerlab-complete"

if [ ! -f "$marker" ]; then
  mkdir -p "$cache"
  rm -rf "$dest"
  tmp="$(mktemp -d "$cache/.py-peer-arrow.partial.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  echo "towerlab setup: installing pandas==$PANDAS_VERSION pyarrow==$PYARROW_VERSION numpy==$NUMPY_VERSION (once)" >&2
  python3 -m pip install --quiet --disable-pip-version-check --no-input --only-binary=:all: \
    --target "$tmp/site" "pandas==$PANDAS_VERSION" "pyarrow==$PYARROW_VERSION" \
    "numpy==$NUMPY_VERSION" "python-dateutil==2.8.2" "pytz==2023.3" "six==1.16.0" --no-deps
  PYTHONPATH="$tmp/site" python3 -c "import pandas, pyarrow, numpy" >&2
  touch "$tmp/.towerlab-complete"
  mv "$tmp" "$dest"
  trap - EXIT
fi
echo "$dest/site"
