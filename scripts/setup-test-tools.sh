#!/usr/bin/env sh
# Tools the test suite drives (the TUI's end-to-end test runs the binary inside tmux).
# Installs tmux only when it is missing and we are allowed to (root or passwordless sudo).
set -eu

if command -v tmux >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup-test-tools: tmux is missing and apt-get is not available; the TUI end-to-end tests will fail until it is installed" >&2
    exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
else
    echo "setup-test-tools: tmux is missing and installing it needs root; the TUI end-to-end tests will fail until it is installed" >&2
    exit 0
fi
echo "setup-test-tools: installing tmux" >&2
$SUDO apt-get install -y tmux || { $SUDO apt-get update && $SUDO apt-get install -y tmux; }
