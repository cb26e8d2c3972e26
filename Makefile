# The two commands of the README. Both do all set-up on a fresh machine first.
.PHONY: demo test setup test-tools

# Installs libtorch (torch==2.11.0 from the Python package registry) into ~/.cache/towerlab once.
setup:
	@./scripts/setup-libtorch.sh

# The main job: the demo ablation on the embedded defaults.
demo: setup
	cargo run --release -p app --bin towerlab -- demo

# Tools the tests drive (tmux for the TUI's end-to-end test; slurmctld, slurmd, slurm-client and
# munge for the Slurm executor's single-node test cluster; postgresql for the store's tests on
# PostgreSQL), installed only when missing.
test-tools:
	@./scripts/setup-test-tools.sh

# The whole test suite.
test: setup test-tools
	cargo test --workspace
