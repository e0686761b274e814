"""`python -m sas_jax.glue {sweep,curve,table,predict} ...`: see `sas_jax/glue/sweep.py`
(predict: `sas_jax/glue/predict.py`)."""
import sys

from sas_jax.glue.sweep import main

if __name__ == "__main__":
    sys.exit(main())
