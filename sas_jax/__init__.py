"""sas_jax: pre-training language-model encoders with SAS (Self-Augmentation Strategy)."""
__version__ = "0.1.0"
