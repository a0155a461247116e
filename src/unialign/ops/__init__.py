"""Tensor operations shared by tokenizers and preprocessing."""
