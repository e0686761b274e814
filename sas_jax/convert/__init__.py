"""Hugging Face import / export: ELECTRA, BERT and DebertaV2 PyTorch checkpoints."""
from sas_jax.convert.hf_config import from_hf_config, to_hf_config
from sas_jax.convert.hf_export import export_electra_pair, export_hf, export_sas, to_hf_state_dict
from sas_jax.convert.hf_import import (
    check_params, import_electra_pair, import_hf, import_sas, load_folder, params_from_state_dict)

__all__ = [
    "check_params", "export_electra_pair", "export_hf", "export_sas", "from_hf_config",
    "import_electra_pair", "import_hf", "import_sas", "load_folder", "params_from_state_dict",
    "to_hf_config", "to_hf_state_dict",
]
