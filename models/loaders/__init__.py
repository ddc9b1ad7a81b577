"""Checkpoint loaders: Hugging Face BitNet, latent-weight, GGUF; tokenizer."""
