# The two commands of the README. Both do all set-up on a fresh machine first.
.PHONY: demo test setup

# Installs libtorch (torch==2.11.0 from the Python package registry) into ~/.cache/towerlab once.
setup:
	@./scripts/setup-libtorch.sh

# The main job: the demo ablation on the embedded defaults.
demo: setup
	cargo run --release -p app --bin towerlab -- demo

# The whole test suite.
test: setup
	cargo test --workspace
