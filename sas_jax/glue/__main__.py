"""`python -m sas_jax.glue {sweep,curve,table} ...`: see `sas_jax/glue/sweep.py`."""
import sys

from sas_jax.glue.sweep import main

if __name__ == "__main__":
    sys.exit(main())
