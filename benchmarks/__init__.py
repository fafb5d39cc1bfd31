"""Benchmarks: nnscratch against PyTorch, scikit-learn, a naive loop and the matmul limit."""
