"""madvae: train, attack and compare generative purification defenses (Defense-VAE, MAD-VAE)."""

__version__ = "0.1.0"
