"""`python -m sas_jax.prepare`: the corpus preparation CLI (see sas_jax/data/prepare.py)."""
from sas_jax.data.prepare import main
if __name__ == "__main__":
    raise SystemExit(main())
