"""The one config loader and the one override parser: values, and every error as one line."""
import ml_collections
import pytest

from sas_jax import config_lib
from sas_jax.errors import UserError


def one_line(excinfo) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg, msg
    return msg


# ----------------------------------------------------------------------------- load_config
def test_names_and_paths_load_the_same_config(repo_root, monkeypatch):
    by_name = config_lib.load_config("sas_small:tiny")
    monkeypatch.chdir(repo_root)
    by_path = config_lib.load_config("configs/sas_small.py:tiny")
    by_abs = config_lib.load_config(f"{repo_root}/configs/sas_small.py:tiny")
    assert by_name.to_dict() == by_path.to_dict() == by_abs.to_dict()
    assert by_name.model.hidden_size == 32 and config_lib.load_config("sas_small").model.hidden_size == 256
    assert config_lib.CONFIG_DIR == repo_root / "configs"


def test_overrides_are_applied_in_order_and_typed():
    c = config_lib.load_config("sas_small:tiny", ["opt.learning_rate=5e-4", "log.tensorboard=False",
                                                  "batch_size=16", "batch_size=24", "data.corpus_dir=/x/y=z"])
    assert (c.opt.learning_rate, c.log.tensorboard, c.batch_size, c.data.corpus_dir) == (5e-4, False, 24, "/x/y=z")
    assert isinstance(c, ml_collections.ConfigDict)


def test_glue_config_takes_the_task_as_a_variant():
    c = config_lib.load_config("glue:task=RTE,tiny")
    assert c.task == "rte" and c.num_epochs == 2 and c.batch_size == 8
    assert tuple(config_lib.load_config("glue:task=cola,base").learning_rates) == (7.5e-5, 5e-5)


@pytest.mark.parametrize("spec, message", [
    ("sas_smal", r"^config 'sas_smal' is not in .*configs \(did you mean 'sas_small'\?\); known: bert_base, "),
    ("nothing_like_it", r"^config 'nothing_like_it' is not in .*configs; known: bert_base, "),
    ("configs/nope.py", r"^config file configs/nope.py not found; pass an existing file such as "
                        r"configs/sas_small.py \(or a name of .*configs\)$"),
    ("configs/nope.py:tiny", r"^config file configs/nope.py not found"),
    ("", r"^no config given; pass a file such as configs/sas_small.py or a name such as sas_small$"),
    ("sas_small:tiyn", r"^sas_small.py:tiyn: unknown config variant 'tiyn' \(did you mean 'tiny'\?\); "
                       r"known: demo, tiny$"),
    ("sas_small:tiny,steps=3", r"^sas_small.py:tiny,steps=3: unknown config variant 'steps'; known: demo, tiny$"),
    ("sas_small:tiny=maybe", r"^sas_small.py:tiny=maybe: config variant tiny='maybe' is not a bool$"),
    ("glue:task=wnli", r"^glue.py:task=wnli: unknown GLUE task 'wnli'; use one of cola, "),
    ("glue:tiny", r"^glue.py:tiny: no GLUE task given; add task=<name> to the variant, e.g. "
                  r"configs/glue.py:task=cola$"),
])
def test_bad_specs_are_one_line_user_errors(spec, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing is written here
    with pytest.raises(UserError, match=message) as e:
        config_lib.load_config(spec)
    one_line(e)
    assert list(tmp_path.iterdir()) == []


def test_files_that_are_not_configs(tmp_path):
    (tmp_path / "empty.py").write_text("X = 1\n")
    (tmp_path / "broken.py").write_text("def get_config(:\n")
    with pytest.raises(UserError, match=r"empty.py has no get_config\(arg\); it is not an experiment config$"):
        config_lib.load_config(str(tmp_path / "empty.py"))
    with pytest.raises(UserError, match=r"broken.py cannot be read \(line 1: .*\); fix the file$") as e:
        config_lib.load_config(str(tmp_path / "broken.py"))
    one_line(e)


def test_a_bad_override_in_load_config_is_a_user_error():
    with pytest.raises(UserError, match=r"^unknown config key 'opt.lr'"):
        config_lib.load_config("sas_small:tiny", ["opt.lr=1"])


# ----------------------------------------------------------------------------- override
def sample() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict({
        "flag": True, "count": 3, "rate": 0.5, "name": "a", "sizes": (16, 32), "rates": [1e-4],
        "empty": (), "bools": (True,), "nothing": None, "group": {"inner": {"depth": 1}, "eps": 1e-6},
    })


@pytest.mark.parametrize("item, key, value", [
    ("flag=false", "flag", False), ("flag=TRUE", "flag", True), ("flag=0", "flag", False), ("flag=1", "flag", True),
    ("count=7", "count", 7), ("count= -2 ", "count", -2), ("count=10_000", "count", 10_000),
    ("rate=1e-3", "rate", 1e-3), ("rate=2", "rate", 2.0),
    ("name=hello world", "name", "hello world"), ("name=", "name", ""), ("name=a=b", "name", "a=b"),
    ("name= spaced ", "name", " spaced "),
    ("sizes=8", "sizes", (8,)), ("sizes=8,16, 24", "sizes", (8, 16, 24)), ("sizes=(4, 5)", "sizes", (4, 5)),
    ("rates=1e-3,5e-4", "rates", [1e-3, 5e-4]), ("rates=[2e-5]", "rates", [2e-5]),
    ("empty=1,2.5", "empty", (1.0, 2.5)), ("bools=true,0", "bools", (True, False)),
    ("nothing=text", "nothing", "text"),
    ("group.eps=1e-8", "group.eps", 1e-8), ("group.inner.depth=4", "group.inner.depth", 4),
    (" count = 5", "count", 5),
])
def test_values_are_typed_by_the_field(item, key, value):
    c = sample()
    config_lib.override(c, item)
    node = c
    for part in key.split("."):
        node = node[part]
    assert node == value and type(node) is type(value)


def test_every_other_field_is_left_alone():
    c = sample()
    before = c.to_dict()
    config_lib.override(c, "group.inner.depth=9")
    after = c.to_dict()
    after["group"]["inner"]["depth"] = 1
    assert after == before


def test_locked_configs_take_overrides_of_existing_fields():
    c = sample()
    c.lock()
    config_lib.override(c, "count=11")
    assert c.count == 11 and c.is_locked
    with pytest.raises(UserError, match=r"^unknown config key 'new'"):
        config_lib.override(c, "new=1")


@pytest.mark.parametrize("item, message", [
    ("count", r"^config override 'count' must look like KEY=VALUE, e.g. opt.learning_rate=5e-4$"),
    ("=3", r"^config override '=3' must look like KEY=VALUE"),
    ("cuont=3", r"^unknown config key 'cuont' \(did you mean 'count'\?\); see the config file's fields"),
    ("group.epss=1", r"^unknown config key 'group.epss' \(did you mean 'group.eps'\?\)"),
    ("group.inner.dept=1", r"^unknown config key 'group.inner.dept' \(did you mean 'group.inner.depth'\?\)"),
    ("zzz.qqq=1", r"^unknown config key 'zzz.qqq'; see the config file's fields \(and their comments\)$"),
    ("count.x=1", r"^config key 'count' is a field, not a group; cannot set 'count.x'$"),
    ("group=1", r"^config key 'group' is a group; set one of its fields, e.g. group.eps=<value>$"),
    ("flag=yes", r"^config flag='yes' is not valid: flag takes a bool \(true/false/1/0\) \(it is now True\)$"),
    ("count=many", r"^config count='many' is not valid: count takes an int \(it is now 3\)$"),
    ("count=1.5", r"^config count='1.5' is not valid: count takes an int"),
    ("rate=fast", r"^config rate='fast' is not valid: rate takes a float \(it is now 0.5\)$"),
    ("sizes=8,x", r"^config sizes='8,x' is not valid: sizes takes a comma-separated list of int"),
    ("bools=true,maybe", r"^config bools='true,maybe' is not valid: bools takes a comma-separated list of bool"),
])
def test_bad_overrides_are_one_line_user_errors(item, message):
    c = sample()
    before = c.to_dict()
    with pytest.raises(UserError, match=message) as e:
        config_lib.override(c, item)
    one_line(e)
    assert c.to_dict() == before


def test_frozen_configs_are_refused():
    with pytest.raises(UserError, match=r"^cannot set 'count': the config is frozen$"):
        config_lib.override(ml_collections.FrozenConfigDict(sample()), "count=1")


def test_the_real_configs_take_their_own_fields(config_factory):
    c = config_factory("sas_small", "tiny", **{"sas.position_policy": "keep", "mesh.rules": "fsdp",
                                               "model.dtype": "bfloat16", "ckpt.async_save": False})
    assert (c.sas.position_policy, c.mesh.rules, c.model.dtype, c.ckpt.async_save) == ("keep", "fsdp", "bfloat16",
                                                                                       False)
    c = config_factory("glue", "task=mrpc,tiny", batch_sizes=(16, 32), learning_rates=(1e-4,))
    assert tuple(c.batch_sizes) == (16, 32) and tuple(c.learning_rates) == (1e-4,)
