"""sas_jax.files: a write appears whole or not at all."""
import json
import os

import pytest

from sas_jax import files


def test_write_json_round_trip_and_parent_created(tmp_path):
    path = tmp_path / "a" / "b" / "x.json"
    files.write_json(str(path), {"b": 1, "a": [2, 3]})
    assert json.loads(path.read_text()) == {"a": [2, 3], "b": 1}
    assert path.read_text().index('"a"') < path.read_text().index('"b"')  # sorted keys
    assert os.listdir(path.parent) == ["x.json"]  # no temporary file left


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "x.txt"
    files.write_text(str(path), "old")
    with pytest.raises(RuntimeError):
        with files.atomic_open(str(path)) as f:
            f.write("half of the new")
            raise RuntimeError("killed mid-write")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["x.txt"]


def test_binary_mode_and_read_mode_refused(tmp_path):
    path = tmp_path / "x.bin"
    with files.atomic_open(str(path), "wb") as f:
        f.write(b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    with pytest.raises(ValueError, match="not a write mode"):
        with files.atomic_open(str(path), "r"):
            pass
