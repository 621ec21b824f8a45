"""Export of a trained Transformer run to a CTranslate2 model directory.

    export_ctranslate2("runs/demo", "exported/demo-ct2", quantization="int8")

The model is described with CTranslate2's own model-spec API (a ``TransformerSpec`` built from
encoder and decoder specs, filled with the weights) and written by a
``ctranslate2.converters.Converter``, as CTranslate2's fairseq and OpenNMT-py converters do.
What maps onto what:

* every attention slot must be the multi-head scaled dot product (types ``scaled_dot`` and
  its alias ``qkv``, with ``heads``): CTranslate2 has no other score. Q/K/V projections are
  fused into one matrix for self-attention (Q | K | V) and K/V for cross-attention (K | V),
  biases included; the scale is CTranslate2's default 1/sqrt(head size), as ours;
* pre-norm (x + f(LN(x)) with a final LayerNorm per stack) and post-norm (LN(x + f(x))) are
  CTranslate2's ``pre_norm`` true and false; LayerNorm epsilon is torch's 1e-5;
* embeddings are scaled by sqrt(d_model) (``scale_embeddings``); both position kinds are
  written as the table the model adds (``position_encodings.encodings``, one row per position
  from 0), so our interleaved sin/cos layout is kept exactly;
* ReLU and the exact (erf) GELU are CTranslate2's RELU and GELU;
* the output projection (tied or not) keeps its bias;
* the vocabularies are the subword pieces in id order; ``<unk>``, ``<s>`` and ``</s>`` are
  the pieces of ids 1, 2 and 3, the source gets ``</s>`` appended (``add_source_eos``) as our
  encoder input does, and decoding starts from ``<s>``.

Our searches never produce ``<pad>`` or ``<s>`` and allow ``</s>`` as the first token: pass
``suppress_sequences=[["<pad>"], ["<s>"]]`` and ``min_decoding_length=0`` to CTranslate2 for
the same outputs (see the README.md written into the export, :mod:`.bundle`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor, nn

from .bundle import ExportError, check_output_dir, write_bundle

__all__ = [
    "QUANTIZATIONS",
    "ExportError",
    "build_spec",
    "check_exportable",
    "check_output_dir",
    "export_ctranslate2",
]

#: --quantization choices: the weight types CTranslate2 stores (float32 = no quantization).
QUANTIZATIONS = ("float32", "int16", "int8")
#: torch's nn.LayerNorm default, which every LayerNorm of our Transformer uses.
LAYER_NORM_EPSILON = 1e-5
SLOTS = ("encoder_self", "decoder_self", "cross")
_NORMS = {"pre": True, "post": False}  # -> CTranslate2's pre_norm
_POSITIONS = ("sinusoidal", "learned")  # both exported as their table
_ACTIVATIONS = ("relu", "gelu")  # -> common_spec.Activation.RELU / GELU (erf)


def check_exportable(model_cfg: Any) -> None:
    """Raises ExportError, naming the setting and why, unless CTranslate2 can run the model.

    model_cfg: a ``seq2seq.config.ModelConfig``.
    """
    from seq2seq.attention import ATTENTION_TYPES, ScaledDotScore

    if model_cfg.arch != "transformer":
        raise ExportError(
            f"model.arch is {model_cfg.arch!r}: CTranslate2 export supports the Transformer "
            "only (CTranslate2 has no model spec for an LSTM encoder-decoder)"
        )
    for slot in SLOTS:
        spec = getattr(model_cfg.attention, slot)
        key = f"model.attention.{slot}"
        if ATTENTION_TYPES.get(spec.type) is not ScaledDotScore:
            raise ExportError(
                f"{key}.type is {spec.type!r}: CTranslate2's attention is the multi-head scaled "
                "dot product only (types scaled_dot, qkv); this score has no equivalent there"
            )
        if spec.heads is None:
            raise ExportError(
                f"{key}.heads is not set: CTranslate2 attention projects queries, keys and "
                "values into heads; a plain score on the raw vectors has no equivalent there"
            )
    self_heads, cross_heads = (
        model_cfg.attention.decoder_self.heads,
        model_cfg.attention.cross.heads,
    )
    if self_heads != cross_heads:
        raise ExportError(
            f"model.attention.cross.heads is {cross_heads} but model.attention.decoder_self.heads "
            f"is {self_heads}: a CTranslate2 decoder has one head count for both"
        )
    transformer = model_cfg.transformer
    for name, value, allowed in (
        ("norm", transformer.norm, tuple(_NORMS)),
        ("positions", transformer.positions, _POSITIONS),
        ("activation", transformer.activation, _ACTIVATIONS),
    ):
        if value not in allowed:
            raise ExportError(
                f"model.transformer.{name} is {value!r}: no CTranslate2 equivalent is known "
                f"here (exportable: {', '.join(allowed)})"
            )


def import_ctranslate2() -> Any:
    """The ``ctranslate2`` package, or ExportError naming the extra that installs it."""
    try:
        import ctranslate2
        import ctranslate2.converters
        import ctranslate2.specs
    except ImportError as exc:
        raise ExportError(
            f"--format ctranslate2 needs the ctranslate2 package ({exc}); install the export "
            "extra: pip install -e '.[export]' (or pip install ctranslate2)"
        ) from None
    return ctranslate2


def _array(tensor: Tensor) -> np.ndarray:
    """A float32 numpy copy of a parameter or buffer."""
    return tensor.detach().cpu().float().numpy().copy()


def _set_linear(spec: Any, *linears: nn.Linear) -> None:
    """Weights [out, in] and biases of ``linears``, stacked along the output (fused Q|K|V)."""
    spec.weight = np.concatenate([_array(linear.weight) for linear in linears])
    spec.bias = np.concatenate([_array(linear.bias) for linear in linears])


def _set_norm(spec: Any, norm: nn.LayerNorm) -> None:
    spec.gamma, spec.beta = _array(norm.weight), _array(norm.bias)


def _set_attention(spec: Any, attn: Any, *, self_attention: bool) -> None:
    if self_attention:
        _set_linear(spec.linear[0], attn.q_proj, attn.k_proj, attn.v_proj)
    else:
        _set_linear(spec.linear[0], attn.q_proj)
        _set_linear(spec.linear[1], attn.k_proj, attn.v_proj)
    _set_linear(spec.linear[-1], attn.out_proj)


def _set_ffn(spec: Any, layer: Any) -> None:
    _set_norm(spec.layer_norm, layer.res_ffn.norm)
    _set_linear(spec.linear_0, layer.ffn.net[0])
    _set_linear(spec.linear_1, layer.ffn.net[3])


def _position_table(model: Any) -> np.ndarray:
    """[max_positions, D]: the vectors the model adds at positions 0, 1, ..."""
    positions = model.positions
    table = positions.table if hasattr(positions, "table") else positions.weight
    return _array(table)


def _fill_encoder(spec: Any, model: Any) -> None:
    spec.embeddings[0].weight = _array(model.src_embed.weight)
    spec.scale_embeddings = True  # x * sqrt(d_model), as TokenEmbedding(scale=True)
    spec.position_encodings.encodings = _position_table(model)
    if model.pre_norm:
        _set_norm(spec.layer_norm, model.encoder_norm)
    for layer_spec, layer in zip(spec.layer, model.encoder_layers, strict=True):
        _set_attention(layer_spec.self_attention, layer.self_attn, self_attention=True)
        _set_norm(layer_spec.self_attention.layer_norm, layer.res_attn.norm)
        _set_ffn(layer_spec.ffn, layer)


def _fill_decoder(spec: Any, model: Any) -> None:
    spec.embeddings.weight = _array(model.tgt_embed.weight)
    spec.scale_embeddings = True
    spec.position_encodings.encodings = _position_table(model)
    if model.pre_norm:
        _set_norm(spec.layer_norm, model.decoder_norm)
    spec.projection.weight = _array(model.output.weight)
    spec.projection.bias = _array(model.output.bias)
    for layer_spec, layer in zip(spec.layer, model.decoder_layers, strict=True):
        _set_attention(layer_spec.self_attention, layer.self_attn, self_attention=True)
        _set_norm(layer_spec.self_attention.layer_norm, layer.res_self.norm)
        _set_attention(layer_spec.attention, layer.cross_attn, self_attention=False)
        _set_norm(layer_spec.attention.layer_norm, layer.res_cross.norm)
        _set_ffn(layer_spec.ffn, layer)


def vocabulary(pieces: list[str], side: str) -> list[str]:
    """The pieces as a CTranslate2 vocabulary (token i = id i), checked to be unambiguous."""
    from seq2seq.vocab import BOS, BOS_ID, EOS, EOS_ID, UNK, UNK_ID

    expected = {UNK_ID: UNK, BOS_ID: BOS, EOS_ID: EOS}
    wrong = {i: pieces[i] for i, piece in expected.items() if pieces[i] != piece}
    if wrong or len(set(pieces)) != len(pieces):
        raise ExportError(
            f"the {side} subword model cannot be a CTranslate2 vocabulary: it needs unique "
            f"pieces with {expected} at those ids (found {wrong or 'repeated pieces'})"
        )
    return list(pieces)


def build_spec(run: Any) -> Any:
    """The filled ``ctranslate2.specs.TransformerSpec`` of a loaded run (checked first)."""
    import_ctranslate2()
    from ctranslate2.specs import common_spec, transformer_spec

    from seq2seq.models.transformer import TransformerSeq2Seq

    cfg, model = run.config.model, run.model
    check_exportable(cfg)
    if not isinstance(model, TransformerSeq2Seq):
        raise ExportError(f"the run's model is a {type(model).__name__}, not a Transformer")
    options = {
        "pre_norm": _NORMS[cfg.transformer.norm],
        "activation": getattr(common_spec.Activation, cfg.transformer.activation.upper()),
    }
    heads = cfg.attention
    encoder = transformer_spec.TransformerEncoderSpec(
        cfg.encoder_layers, heads.encoder_self.heads, **options
    )
    decoder = transformer_spec.TransformerDecoderSpec(
        cfg.decoder_layers, heads.decoder_self.heads, **options
    )
    spec = transformer_spec.TransformerSpec(encoder, decoder)
    _fill_encoder(spec.encoder, model)
    _fill_decoder(spec.decoder, model)
    tokenizer = run.tokenizer
    spec.register_source_vocabulary(
        vocabulary(tokenizer.src_pieces(range(tokenizer.src_vocab_size)), "source")
    )
    spec.register_target_vocabulary(
        vocabulary(tokenizer.tgt_pieces(range(tokenizer.tgt_vocab_size)), "target")
    )
    config = spec.config
    config.unk_token, config.bos_token, config.eos_token = "<unk>", "<s>", "</s>"
    config.decoder_start_token = "<s>"
    config.add_source_bos, config.add_source_eos = False, True
    config.layer_norm_epsilon = LAYER_NORM_EPSILON
    return spec


def _convert(spec: Any, directory: Path, quantization: str) -> None:
    """Writes model.bin, config.json and the vocabularies of ``spec`` into ``directory``
    (which CTranslate2's converter replaces)."""
    from ctranslate2.converters import Converter

    class RunConverter(Converter):
        """CTranslate2 converter of a loaded seq2seq run (its spec built by build_spec)."""

        def _load(self) -> Any:
            return spec

    RunConverter().convert(str(directory), quantization=quantization, force=True)


def export_ctranslate2(
    run_path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    quantization: str = "float32",
    overwrite: bool = False,
) -> Path:
    """Exports a run directory (its best.pt, else last.pt) or a .pt checkpoint to ``out``.

    ``out`` gets model.bin, config.json, the vocabulary file(s), the subword model(s) and a
    README.md. An existing ``out`` is refused unless ``overwrite`` (and then only when it is
    an exported model or empty); on any error nothing is written. Returns ``out``.
    """
    from seq2seq.checkpoint import load_run

    if quantization not in QUANTIZATIONS:
        raise ExportError(
            f"--quantization {quantization!r}: expected one of {', '.join(QUANTIZATIONS)}"
        )
    out = Path(out)
    check_output_dir(out, overwrite)
    run = load_run(run_path, device="cpu")
    check_exportable(run.config.model)
    spec = build_spec(run)
    spec.validate()  # refuse before anything is written

    def fill(directory: Path) -> None:
        _convert(spec, directory, quantization)

    return write_bundle(out, run, quantization=quantization, fill=fill)
