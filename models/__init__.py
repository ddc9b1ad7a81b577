"""Model configs, checkpoint loaders, the golden model, references and the shipped tiny model."""
