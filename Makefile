# One-command entry points for a fresh machine (see README.md).
.PHONY: setup demo test bench

setup:
	@bash scripts/setup.sh

# Set up, build, and run the demo on the built-in racy guest.
demo: setup
	cargo run --release --quiet -- demo

# Set up and run every test of the workspace.
test: setup
	cargo test --workspace

# Print the speed and trace-size figures of docs/performance.md.
bench: setup
	cargo run --release --quiet --bin weft-bench
