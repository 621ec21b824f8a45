"""Property-based tests of the config loader: any value under any key, in a dict, a YAML file or
a --set override, gives a valid config or a ConfigError naming what is wrong, never another
exception."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seq2seq.config import Config, ConfigError, config_from_dict, config_to_dict, load_config
from seq2seq.schema import _paths

KEYS = _paths(Config, "")  # every dotted key of the schema, sections included
BASE = {
    "data": {
        "train": {"src": "train.en", "tgt": "train.de"},
        "valid": {"src": "valid.en", "tgt": "valid.de"},
    },
    "train": {"max_steps": 100},
}
SETTINGS = settings(  # derandomized: the same examples on every run, so CI cannot flake
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats()
    | text
    | st.sampled_from(["20m", "1e999", ".inf", "scaled_dot", "rnn", "1h30m", "-0", "0x10"])
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(text | st.sampled_from(KEYS) | st.integers(), inner, max_size=3)
    ),
    max_leaves=6,
)


def _with(key: str, value: Any) -> dict[str, Any]:
    """BASE with ``value`` at the dotted ``key`` (sections created as needed)."""
    data = copy.deepcopy(BASE)
    *parents, last = key.split(".")
    node = data
    for name in parents:
        node = node.setdefault(name, {})
    node[last] = value
    return data


def _check_outcome(load, *, where: str) -> None:
    """``load()`` returns a config that survives a round trip, or raises a clear ConfigError."""
    try:
        cfg = load()
    except ConfigError as exc:
        message = str(exc)
        assert message.strip(), "empty error message"
        assert where in message, message
        if exc.key is not None:  # named as written, or escaped as repr() does
            key = re.sub(r"\[\d+\]$", "", exc.key)
            assert key in message or repr(key)[1:-1] in message, message
        return
    assert isinstance(cfg, Config)
    assert config_from_dict(config_to_dict(cfg)) == cfg


@SETTINGS
@given(key=st.sampled_from(KEYS), value=values)
def test_any_value_under_any_key_of_a_dict(key: str, value: Any) -> None:
    _check_outcome(lambda: config_from_dict(_with(key, value)), where="")


@SETTINGS
@given(key=st.sampled_from(KEYS), value=values)
def test_any_value_under_any_key_of_a_yaml_file(tmp_path: Path, key: str, value: Any) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(_with(key, value), allow_unicode=True), encoding="utf-8")
    _check_outcome(lambda: load_config(path), where=str(path))


@SETTINGS
@given(
    key=st.sampled_from(KEYS) | text,
    value=values.map(lambda v: yaml.safe_dump(v, default_flow_style=True, width=10**6).strip())
    | text,
)
def test_any_override(key: str, value: str) -> None:
    item = f"{key}={value}"
    _check_outcome(lambda: config_from_dict(BASE, [item]), where="")
