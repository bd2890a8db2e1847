"""Shipped model weights (the trained anonymizer M, its config and training log)."""
