"""`python -m sas_jax.glue {sweep,curve,table,predict,predict_file} ...`: see `sas_jax/glue/sweep.py`
(predict: `sas_jax/glue/predict.py`; predict_file: `sas_jax/glue/predict_file.py`)."""
import sys

from sas_jax.glue.sweep import main

if __name__ == "__main__":
    sys.exit(main())
