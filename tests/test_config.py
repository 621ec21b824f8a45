"""Configuration: defaults, YAML round trips, overrides and every kind of refused input."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml

from seq2seq.attention import ATTENTION_TYPES
from seq2seq.config import (
    ConfigError,
    CorpusConfig,
    config_from_dict,
    config_to_dict,
    load_config,
    parse_duration,
    save_config,
)

MINIMAL = {
    "data": {
        "train": {"src": "train.en", "tgt": "train.de"},
        "valid": {"src": "valid.en", "tgt": "valid.de"},
    }
}


def load(overrides=(), **sections):
    return config_from_dict({**MINIMAL, **sections}, overrides)


def error_of(overrides=(), **sections) -> str:
    with pytest.raises(ConfigError) as info:
        load(overrides, **sections)
    return str(info.value)


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- defaults and round trips -------------------------------------------------------------


def test_minimal_config_takes_the_documented_defaults():
    cfg = load()
    assert cfg.data.train == CorpusConfig(src="train.en", tgt="train.de")
    assert cfg.data.test is None
    assert (cfg.data.max_len, cfg.data.tokenizer.vocab_size, cfg.data.tokenizer.joint) == (
        100,
        8000,
        True,
    )
    assert cfg.model.arch == "transformer"
    assert (cfg.model.embed_dim, cfg.model.encoder_layers, cfg.model.decoder_layers) == (256, 3, 3)
    for slot in ("cross", "encoder_self", "decoder_self"):
        spec = getattr(cfg.model.attention, slot)
        assert (spec.type, spec.heads, spec.dropout, spec.hidden_dim) == (
            "scaled_dot",
            None,
            0,
            None,
        )
    assert (cfg.model.rnn.hidden_dim, cfg.model.rnn.style, cfg.model.rnn.bridge) == (
        512,
        "bahdanau",
        "linear",
    )
    assert cfg.model.transformer.ffn_dim == 1024
    assert (cfg.train.lr, cfg.train.betas, cfg.train.max_steps, cfg.train.max_time) == (
        5e-4,
        [0.9, 0.98],
        20000,
        None,
    )
    assert (cfg.decode.beam, cfg.decode.length_penalty) == (5, 0.6)


def test_list_defaults_are_not_shared_between_configs():
    first, second = load(), load()
    first.train.betas.append(0.5)
    assert second.train.betas == [0.9, 0.98]


def test_dict_round_trip_is_identity():
    cfg = load(
        ["model.arch=rnn", "model.attention.cross.type=additive", "train.max_time=1h30m"],
        decode={"beam": 3},
    )
    plain = config_to_dict(cfg)
    assert isinstance(plain["model"]["attention"]["cross"], dict)
    assert config_from_dict(plain) == cfg


def test_save_and_load_round_trip(tmp_path):
    cfg = load(
        ["data.test.src=t.en", "data.test.tgt=t.de", "model.attention.cross.heads=4"],
        train={"betas": [0.8, 0.9], "clip_norm": None},
    )
    path = tmp_path / "config.yaml"
    save_config(cfg, path)
    assert load_config(path) == cfg
    assert yaml.safe_load(path.read_text()) == config_to_dict(cfg)
    assert [p.name for p in tmp_path.iterdir()] == ["config.yaml"]


def test_save_is_atomic_when_the_rename_fails(tmp_path, monkeypatch):
    path = tmp_path / "config.yaml"
    save_config(load(), path)
    before = path.read_text()

    def broken_replace(src, dst):
        raise OSError("disk went away")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk went away"):
        save_config(load(["model.arch=rnn"]), path)
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["config.yaml"]


def test_yaml_file_with_comments_and_relative_paths_is_kept_as_written(tmp_path):
    path = write(
        tmp_path,
        "# a comment\n"
        "data:\n"
        "  train: {src: corpus/train.en.gz, tgt: corpus/train.de.gz}  # relative\n"
        "  valid: {src: corpus/val.en.gz, tgt: corpus/val.de.gz}\n"
        "train:\n"
        "  lr: 7e-4        # YAML 1.1 reads this as a string; float fields accept it\n"
        "  max_steps: null\n"
        "  max_epochs: 2\n",
    )
    cfg = load_config(path)
    assert cfg.data.train.src == "corpus/train.en.gz"
    assert cfg.train.lr == pytest.approx(7e-4)
    assert (cfg.train.max_steps, cfg.train.max_epochs) == (None, 2)


# --- overrides ----------------------------------------------------------------------------


def test_override_values_are_read_as_yaml():
    cfg = load(
        [
            "model.embed_dim=128",
            "model.share_embeddings=true",
            "model.attention.cross.heads=4",
            "train.clip_norm=null",
            "train.betas=[0.9, 0.98]",
            "train.lr=0.001",
            "model.attention.cross={type: additive, hidden_dim: 64}",
        ]
    )
    assert cfg.model.embed_dim == 128 and cfg.model.share_embeddings is True
    assert cfg.train.clip_norm is None and cfg.train.lr == 0.001
    # the later override of the whole section replaces the earlier heads override
    assert cfg.model.attention.cross == type(cfg.model.attention.cross)(
        type="additive", hidden_dim=64
    )


def test_override_of_free_text_keeps_the_text():
    cfg = load(["data.src_lang=no", "data.tgt_lang=on", "data.train.src=2016"])
    assert (cfg.data.src_lang, cfg.data.tgt_lang, cfg.data.train.src) == ("no", "on", "2016")


def test_override_wins_over_the_file_and_can_create_an_optional_section(tmp_path):
    path = write(tmp_path, yaml.safe_dump({**MINIMAL, "train": {"max_steps": 10}}))
    cfg = load_config(path, ["train.max_steps=20", "data.test.src=a", "data.test.tgt=b"])
    assert cfg.train.max_steps == 20
    assert cfg.data.test == CorpusConfig(src="a", tgt="b")


def test_override_unknown_key_names_the_item_and_the_nearest_key():
    message = error_of(["model.atention.cross.type=additive"])
    assert "--set model.atention.cross.type=additive" in message
    assert "'model.atention'" in message
    assert "did you mean 'model.attention'?" in message


def test_override_without_equals_sign_or_below_a_value():
    assert "expected KEY=VALUE" in error_of(["train.max_steps"])
    message = error_of(["train.lr.peak=1"])
    assert "'train.lr' is a value (float)" in message


def test_override_value_that_is_not_yaml():
    message = error_of(["train.betas=[0.9,"])
    assert "--set train.betas=[0.9," in message and "cannot read '[0.9,' as YAML" in message


def test_override_goes_through_the_same_validation():
    message = error_of(["model.dropout=1.5"])
    assert message.startswith("--set model.dropout=1.5: ")
    assert "model.dropout: 1.5 is out of range; allowed: 0.0 <= value < 1.0" in message


# --- unknown keys -------------------------------------------------------------------------


def test_unknown_key_in_file_names_file_line_key_and_nearest(tmp_path):
    path = write(
        tmp_path,
        yaml.safe_dump(MINIMAL) + "model:\n  arch: rnn\n  atention:\n    cross: {type: dot}\n",
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    line = path.read_text().splitlines().index("  atention:") + 1
    assert message.startswith(f"{path}:{line}: ")
    assert "unknown key 'model.atention'; did you mean 'model.attention'?" in message
    assert info.value.key == "model.atention"


def test_unknown_top_level_section():
    assert "unknown key 'trian'; did you mean 'train'?" in error_of(trian={})


def test_key_at_the_wrong_level_points_to_where_it_lives():
    message = error_of(["model.hidden_dim=256"])
    assert "did you mean 'model.rnn.hidden_dim'" in message


def test_unknown_key_without_a_near_spelling_lists_the_valid_keys():
    message = error_of(decode={"zzz": 1})
    assert "unknown key 'decode.zzz'" in message
    assert "valid keys under 'decode': beam, n_best, length_penalty" in message


# --- types --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "value", "key", "expected"),
    [
        ({"model": {"embed_dim": "big"}}, "'big' (str)", "model.embed_dim", "expected int"),
        ({"model": {"embed_dim": 256.0}}, "256.0 (float)", "model.embed_dim", "expected int"),
        ({"train": {"max_steps": True}}, "True (bool)", "train.max_steps", "expected int or null"),
        ({"train": {"lr": True}}, "True (bool)", "train.lr", "expected float"),
        ({"train": {"lr": "fast"}}, "'fast' (str)", "train.lr", "expected float"),
        ({"model": {"tie_output": 1}}, "1 (int)", "model.tie_output", "expected bool"),
        ({"data": {"src_lang": False}}, "False (bool)", "data.src_lang", "expected str"),
        ({"train": {"betas": 0.9}}, "0.9 (float)", "train.betas", "expected a list of float"),
        ({"train": {"betas": [0.9, "x"]}}, "'x' (str)", "train.betas[1]", "expected float"),
        ({"model": {"attention": 3}}, "3 (int)", "model.attention", "expected a mapping"),
    ],
)
def test_wrong_type_names_key_value_and_expected_type(section, value, key, expected):
    sections = dict(section)
    if "data" in sections:
        sections["data"] = {**MINIMAL["data"], **sections["data"]}
    message = error_of(**sections)
    assert f"{key}: {expected}" in message
    assert f"got {value}" in message


def test_int_is_accepted_for_float_and_null_for_optional():
    cfg = load(train={"lr": 1, "clip_norm": None, "max_steps": None, "max_epochs": 3})
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)
    assert cfg.train.clip_norm is None


def test_null_for_a_required_value_is_refused():
    message = error_of(["model.embed_dim=null"])
    assert "model.embed_dim: expected int, got None" in message


# --- ranges and choices -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "allowed"),
    [
        ("model.dropout=1.0", "model.dropout: 1.0 is out of range; allowed: 0.0 <= value < 1.0"),
        ("data.tokenizer.vocab_size=8", "allowed: value >= 16"),
        ("data.tokenizer.character_coverage=0.9", "allowed: 0.9 < value <= 1.0"),
        ("model.attention.cross.heads=0", "model.attention.cross.heads: 0 is out of range"),
        ("train.lr=0", "train.lr: 0.0 is out of range; allowed: value > 0.0"),
        ("train.betas=[0.9, 1.0]", "train.betas[1]: 1.0 is out of range"),
        ("decode.beam=0", "decode.beam: 0 is out of range; allowed: value >= 1"),
        ("train.max_steps=-5", "train.max_steps: -5 is out of range"),
    ],
)
def test_out_of_range_names_key_value_and_range(override, allowed):
    assert allowed in error_of([override])


def test_choice_names_key_value_choices_and_nearest():
    message = error_of(["model.arch=transfomer"])
    assert "model.arch: 'transfomer' is not allowed" in message
    assert "choose one of 'rnn', 'transformer'" in message
    assert "did you mean 'transformer'?" in message


def test_decode_stopping_is_a_choice():
    assert load().decode.stopping == "exact"
    assert load(["decode.stopping=early"]).decode.stopping == "early"
    message = error_of(["decode.stopping=eraly"])
    assert "decode.stopping: 'eraly' is not allowed" in message
    assert "did you mean 'early'?" in message


def test_attention_type_is_checked_against_the_registry():
    message = error_of(["model.attention.decoder_self.type=addtive"])
    assert "model.attention.decoder_self.type: 'addtive' is not an attention type" in message
    for name in ATTENTION_TYPES:
        assert repr(name) in message
    assert "did you mean 'additive'?" in message


@pytest.mark.parametrize("name", list(ATTENTION_TYPES))
def test_every_registered_attention_type_is_accepted(name):
    cfg = load([f"model.attention.cross.type={name}", "model.attention.cross.heads=4"])
    assert cfg.model.attention.cross.type == name


# --- cross-field constraints --------------------------------------------------------------


def test_qkv_needs_heads():
    message = error_of(["model.attention.cross.type=qkv"])
    assert "model.attention.cross.heads" in message and "needs heads" in message
    assert load(["model.attention.cross.type=qkv", "model.attention.cross.heads=2"])


def test_heads_must_divide_the_query_width():
    message = error_of(["model.attention.encoder_self.heads=3"])
    assert "model.attention.encoder_self.heads: 3 does not divide model.embed_dim (256)" in message
    message = error_of(
        ["model.arch=rnn", "model.rnn.hidden_dim=300", "model.attention.cross.heads=7"]
    )
    assert "does not divide model.rnn.hidden_dim (300)" in message
    # an rnn never uses the self-attention slots
    assert load(["model.arch=rnn", "model.attention.encoder_self.heads=3"])


def test_rnn_hidden_dim_must_be_even():
    assert "model.rnn.hidden_dim: 511 must be even" in error_of(
        ["model.arch=rnn", "model.rnn.hidden_dim=511"]
    )


def test_shared_embeddings_need_a_joint_vocabulary():
    message = error_of(["model.share_embeddings=true", "data.tokenizer.joint=false"])
    assert "model.share_embeddings" in message and "data.tokenizer.joint is false" in message


def test_max_len_must_fit_the_positions():
    message = error_of(["data.max_len=255"])
    assert "data.max_len: 255" in message and "allowed: data.max_len <= 254" in message
    assert load(["data.max_len=254"]).data.max_len == 254


def test_betas_need_two_values_and_n_best_at_most_beam():
    assert "train.betas: expected 2 values" in error_of(["train.betas=[0.9]"])
    message = error_of(["decode.beam=2", "decode.n_best=3"])
    assert "decode.n_best: 3 is larger than decode.beam (2)" in message


def test_training_needs_a_stopping_criterion():
    message = error_of(["train.max_steps=null"])
    assert "train.max_steps, train.max_epochs, train.max_time" in message
    assert load(["train.max_steps=null", "train.max_time=20m"]).train.max_time == "20m"


def test_linear_schedule_needs_a_budget_to_decay_over():
    message = error_of(["train.schedule=linear", "train.max_steps=null", "train.max_epochs=5"])
    assert "train.schedule: 'linear'" in message and "train.max_steps or train.max_time" in message
    cfg = load(["train.schedule=linear", "train.max_steps=null", "train.max_time=20m"])
    assert cfg.train.schedule == "linear"


def test_max_time_is_validated_at_load_time():
    message = error_of(["train.max_time=20 minutes"])
    assert "train.max_time: invalid duration '20 minutes'" in message


# --- required keys, files, YAML -----------------------------------------------------------


def test_missing_required_sections_and_keys():
    with pytest.raises(ConfigError, match=r"missing required key 'data'"):
        config_from_dict({})
    with pytest.raises(ConfigError, match=r"missing required key 'data.valid' \(expected a map"):
        config_from_dict({"data": {"train": {"src": "a", "tgt": "b"}}})
    with pytest.raises(ConfigError, match=r"missing required key 'data.train.tgt'"):
        config_from_dict({"data": {"train": {"src": "a"}, "valid": {"src": "a", "tgt": "b"}}})


def test_missing_key_in_file_points_to_the_enclosing_section(tmp_path):
    path = write(tmp_path, "model:\n  arch: rnn\ndata:\n  train: {src: a, tgt: b}\n")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}:3: missing required key"):
        load_config(path)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"config file not found: .*nope\.yaml"):
        load_config(tmp_path / "nope.yaml")


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    path = write(tmp_path, "data:\n  train: {src: a, tgt: b}\n  valid: [a, b\nmodel: {}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert re.match(rf"{re.escape(str(path))}:4:\d+: invalid YAML", str(info.value))


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "just text\n"])
def test_a_file_that_is_not_a_mapping(tmp_path, text):
    with pytest.raises(ConfigError, match=re.escape(str(tmp_path))):
        load_config(write(tmp_path, text))


DATA_YAML = "data:\n  train: {src: a, tgt: b}\n  valid: {src: c, tgt: d}\n"


def test_duplicate_keys_are_refused_with_both_lines(tmp_path):
    text = (
        DATA_YAML + "train:\n  lr: 0.001\n  max_steps: 10\n"
        "model:\n  arch: rnn\n"
        "train:\n  max_steps: 20\n"
    )
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}:9: duplicate key 'train', also at line 4")
    nested = "data:\n  train: {src: a, tgt: b, src: e}\n  valid: {src: c, tgt: d}\n"
    with pytest.raises(ConfigError, match=r":2: duplicate key 'data\.train\.src', also at line 2"):
        load_config(write(tmp_path, nested))
    deeper = (
        DATA_YAML + "model:\n  attention:\n    cross:\n      type: dot\n"
        "      heads: 2\n      type: additive\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, deeper))
    assert ":9: duplicate key 'model.attention.cross.type', also at line 7" in str(info.value)


def test_an_alias_to_an_enclosing_section_is_an_error_not_a_crash(tmp_path):
    text = "data: &d\n  train: {src: a, tgt: b}\n  valid: *d\n"
    with pytest.raises(ConfigError, match=r"config\.yaml:\d+: unknown key 'data\.valid\.train'"):
        load_config(write(tmp_path, text))


def test_the_same_key_in_different_sections_is_not_a_duplicate(tmp_path):
    text = "data:\n  train: {src: a, tgt: b}\n  valid: {src: a, tgt: b}\n"
    assert load_config(write(tmp_path, text)).data.valid.src == "a"


@pytest.mark.parametrize(
    ("override", "shown"),
    [
        ("train.lr=.inf", "train.lr: inf is not a finite number"),
        ("train.lr=.nan", "train.lr: nan is not a finite number"),
        ("decode.length_penalty=-.inf", "decode.length_penalty: -inf is not a finite number"),
        ("train.clip_norm=1e999", "train.clip_norm: '1e999' is not a finite number"),
        ("train.betas=[0.9, .nan]", "train.betas[1]: nan is not a finite number"),
        pytest.param(
            f"train.weight_decay={10**400}", "train.weight_decay: 1000", id="400-digit-int"
        ),
    ],
)
def test_non_finite_numbers_are_refused(override, shown):
    message = error_of([override])
    assert f"--set {override}: " in message and shown in message
    assert "expected a finite float" in message


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("train:\n  lr: .inf\n", r"config\.yaml:5: train\.lr: inf is not a finite"),
        ("x: 2024-13-45\n", r"config\.yaml: invalid YAML: month must be in 1\.\.12"),
    ],
    ids=["non-finite", "impossible-date"],
)
def test_bad_values_in_a_file_name_it(tmp_path, text, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_config(write(tmp_path, DATA_YAML + text))


def test_a_value_yaml_cannot_construct_in_an_override():
    message = error_of(["data.src_lang=2024-13-45"])
    assert "--set data.src_lang=2024-13-45: cannot read '2024-13-45' as YAML" in message


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


# --- durations ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("20m", 1200), ("1h30m", 5400), ("90s", 90), ("1.5h", 5400), ("1h 0m 5s", 3605), ("2H", 7200)],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text",
    [
        "",
        "20",
        "m",
        "20x",
        "30m1h",
        "-5m",
        "0m",
        "1.2.3h",
        pytest.param("9" * 400 + "h", id="9e400h"),
    ],
)
def test_parse_duration_refuses(text):
    with pytest.raises(ConfigError, match="invalid duration"):
        parse_duration(text)
