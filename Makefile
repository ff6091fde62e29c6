# One-command entry points for a fresh machine (see README.md).
.PHONY: setup demo test bench fuzz

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

# Fuzz every target for a while (docs/reliability.md); ITERATIONS and SEED to taste.
ITERATIONS ?= 100000
SEED ?= 1
fuzz: setup
	cargo build --profile fuzz --bins
	target/fuzz/weft-fuzz trace --iterations $(ITERATIONS) --seed $(SEED)
	target/fuzz/weft-fuzz elf --iterations $(ITERATIONS) --seed $(SEED) --run-every 100
	target/fuzz/weft-fuzz cli --iterations $(ITERATIONS) --seed $(SEED) --run-every 4
