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
        # Upper bounds: the newest releases the suite passed with (README "Tested with": CPU
        # machine jax/jaxlib 0.10.2, flax 0.12.8, optax 0.2.8, orbax-checkpoint 0.12.8), up to
        # the next minor release. jax/jaxlib < 0.12 also admits the GPU image's CUDA jax 0.11.2
        # (flax 0.12.10, orbax-checkpoint 0.12.4), where a cap at 0.11 would make pip replace
        # its CUDA jaxlib; the suite has not been run on 0.11 (docs/benchmarks.md: no GPU run).
        "jax>=0.10.0,<0.12",
        "jaxlib>=0.10.0,<0.12",
        "flax>=0.12.0,<0.13",
        "optax>=0.2.8,<0.3",
        "orbax-checkpoint>=0.12.4,<0.13",
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
        "tfds": ["tensorflow-datasets>=4.9", "array_record>=0.5"],  # read as ArrayRecord, no TensorFlow
        # TensorBoard's event reader for sas_jax.analysis.logs (without it: metrics.jsonl).
        "logs": ["tensorboard>=2.16"],
        # The peer baseline benchmarks/hf_baseline.py (Hugging Face + PyTorch, CPU or CUDA).
        "bench": ["torch>=2.4", "transformers>=5.0"],
        # Test-only: HF parity (torch CPU + transformers), metric checks (scipy).
        # torch is capped below 2.14 so pip takes the CPU wheel rather than a CUDA build.
        "test": ["pytest>=8", "pytest-xdist>=3.5", "pytest-timeout>=2.3", "scipy>=1.10", "torch>=2.4,<2.14", "transformers>=5.0", "safetensors>=0.4",
                 "scikit-learn>=1.3", "nbformat>=5.9", "nbclient>=0.10", "ipykernel>=6.0", "tensorboard>=2.16"],
    },
)
