"""Flax modules: the encoder, its heads and the pre-training models."""
from sas_jax.models.config import ModelConfig
from sas_jax.models.electra import ElectraModel, generator_config
from sas_jax.models.pretraining import PretrainingModel

__all__ = ["ElectraModel", "ModelConfig", "PretrainingModel", "generator_config"]
