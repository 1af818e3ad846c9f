"""`python -m benchmarks [--quick] [--gpu]`: the performance goals, measured on this machine.

One module per measurement (padding, training, features, memory, gpu); `run` puts them
together, prints the goal | measured | ok table, writes results/bench.md and
results/bench.json, and exits 1 when a goal is missed. Every goal is a ratio of two
things measured in the same run (interleaved where it matters), so a CPU shared with other
work shifts both sides alike.
"""
