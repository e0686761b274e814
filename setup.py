"""sas_jax: SAS (Self-Augmentation Strategy) pre-training in JAX/Flax."""
from setuptools import find_packages, setup

setup(
    name="sas_jax",
    version="0.1.0",
    description="Pre-training language-model encoders with SAS, BERT, ELECTRA and DeBERTa-style "
                "attention in JAX/Flax",
    long_description=open("README.md", encoding="utf-8").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["sas_jax", "sas_jax.*"]),
    install_requires=[
        # Ranges admit both the CPU machines (jax 0.10.x) and the GPU image (jax 0.11.2,
        # flax 0.12.10, optax 0.2.8, orbax-checkpoint 0.12.4).
        "jax>=0.10.0",
        "flax>=0.12.0",
        "optax>=0.2.8",
        "orbax-checkpoint>=0.12.4",
        "ml_collections>=1.0",
        "sentencepiece>=0.2.0",
        "tokenizers>=0.20",
        "absl-py>=2.0",
        "numpy>=1.26",
        "tensorboardX>=2.6",
        "tqdm>=4.60",
        "matplotlib>=3.7",  # GLUE tables/curves and the notebooks' figures
    ],
    extras_require={
        "tfds": ["tensorflow-datasets>=4.9"],
        # The peer baseline benchmarks/hf_baseline.py (Hugging Face + PyTorch, CPU or CUDA).
        "bench": ["torch>=2.4", "transformers>=5.0"],
        # Test-only: HF parity (torch CPU + transformers), metric checks (scipy).
        # torch is capped below 2.14 so pip takes the CPU wheel rather than a CUDA build.
        "test": ["pytest>=8", "scipy>=1.10", "torch>=2.4,<2.14", "transformers>=5.0", "safetensors>=0.4",
                 "scikit-learn>=1.3", "nbformat>=5.9", "nbclient>=0.10", "ipykernel>=6.0"],
    },
)
