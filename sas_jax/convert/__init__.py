"""Hugging Face import / export: ELECTRA, BERT and DebertaV2 PyTorch checkpoints
(CLI: `python -m sas_jax.convert`, see `workdir.py`)."""
from sas_jax.convert.hf_config import from_hf_config, to_hf_config
from sas_jax.convert.hf_export import export_electra_pair, export_hf, export_sas, to_hf_state_dict
from sas_jax.convert.hf_tokenizer import to_hf_tokenizer, write_hf_tokenizer
from sas_jax.convert.workdir import export_checkpoint, import_to_workdir
from sas_jax.convert.hf_import import (
    check_params, import_electra_pair, import_hf, import_sas, load_folder, params_from_state_dict)

__all__ = [
    "check_params", "export_checkpoint", "export_electra_pair", "export_hf", "export_sas", "from_hf_config",
    "import_electra_pair", "import_hf", "import_sas", "import_to_workdir", "load_folder", "params_from_state_dict",
    "to_hf_config", "to_hf_state_dict", "to_hf_tokenizer", "write_hf_tokenizer",
]
