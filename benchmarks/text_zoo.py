"""Every text, image- and audio-classification architecture of transformers, shrunk,
predicted against a real CPU step.

``python benchmarks/text_zoo.py`` takes every architecture of transformers'
``MODEL_FOR_CAUSAL_LM_MAPPING_NAMES``, ``MODEL_FOR_MASKED_LM_MAPPING_NAMES``,
``MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES``,
``MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES`` and
``MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES``
(``transformers.models.auto.modeling_auto``), builds it on the meta device through
:func:`complexity.zoo.parse_spec` (``hf:ARCH``) from its config class's defaults
shrunk by one generic function (:func:`shrink`: every field it recognises — layers
to 2, width to 64 with a consistent head dimension, grouped-query key/value heads
to a divisor, the feed-forward to 128, the vocabulary to 128, ...), and for
``full`` and ``last`` training (:func:`complexity.cost.step.trainable.set_trainable`)
compares :func:`complexity.cost.predict.prediction.predict_with_unmodelled` with a
real CPU step (:func:`complexity.cost.measure.cpu_step.measure`, ``how="real"``)
at batch 2: ``(2, 16)`` token ids, 32 × 32 images, 4000 audio samples or the
model's shrunk spectrogram (:func:`batch_input`, from the spec's input:
:func:`complexity.zoo._hf_input`). Nothing is downloaded; no remote code is run.

It writes ``reports/text_zoo.md`` (rewritten after every model, so an interrupted
run leaves the rows done so far): one row per (architecture, mode) with the error
of each of the seven quantities, and a summary computed from the rows: how many
built and ran, how many are exact on every quantity, the unmodelled calls ranked
by how many models hit them, and every architecture that did not build or could
not train, with why.

Options: ``--only Llama,Qwen`` (substrings of the class names), ``--subset``
(every causal-LM architecture plus the first ``--others`` (10) of each other
mapping, in name order: a deterministic subset when the whole corpus takes too
long), ``--mappings image_classification,audio_classification`` (some mappings
only), ``--limit N`` (the first N architectures), ``--sample N`` (the first N
of each family of a mapping: a deterministic sample; ``--every K``, of one family
in K), ``--out PATH``,
``--timeout S`` (seconds per architecture, via SIGALRM; default 120).
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from complexity.errors import reason  # noqa: E402
from corpus import compare, report, run  # noqa: E402
SHAPE = (2, 16)
MAPPINGS = ("MODEL_FOR_CAUSAL_LM_MAPPING_NAMES", "MODEL_FOR_MASKED_LM_MAPPING_NAMES",
            "MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES",
            "MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES",
            "MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES")
#: Raw audio samples per example (a shrunk feature encoder still strides 320).
AUDIO_SAMPLES = 4000

# ------------------------------------------------------------------ the shrunk config
LAYERS = ("num_hidden_layers", "n_layer", "num_layers", "n_layers", "num_decoder_layers",
          "num_encoder_layers", "decoder_layers", "encoder_layers", "num_blocks")
WIDTH = ("hidden_size", "d_model", "n_embd", "dim", "embed_dim", "embedding_size",
         "word_embed_proj_dim", "hidden_dim", "model_dim")
HEADS = ("num_attention_heads", "n_head", "n_heads", "num_heads", "encoder_attention_heads",
         "decoder_attention_heads", "attention_heads")
KV_HEADS = ("num_key_value_heads", "n_kv_heads", "num_kv_heads", "multi_query_group_num",
            "n_head_kv", "num_key_value_groups")
FFN = ("intermediate_size", "ffn_dim", "n_inner", "d_ff", "ffn_hidden_size", "hidden_dim_ffn",
       "encoder_ffn_dim", "decoder_ffn_dim", "moe_intermediate_size",
       "shared_expert_intermediate_size", "mlp_dim", "inner_dim")
VOCAB = ("vocab_size",)
POSITIONS = ("max_position_embeddings", "n_positions", "n_ctx", "max_seq_len",
             "max_sequence_length", "seq_length")
HEAD_DIM = ("head_dim", "attention_head_size", "d_kv", "kv_channels")
EXPERTS = ("num_experts", "num_local_experts", "n_routed_experts", "moe_num_experts")
EXPERTS_PER_TOKEN = ("num_experts_per_tok", "top_k", "moe_topk", "num_selected_experts")
WIDTH_ = 64
HEADS_ = 4
HEAD_DIM_ = WIDTH_ // HEADS_
#: A shrunk model above this many parameters is not run (a real step of it could
#: exhaust the memory): some field the shrink does not know keeps it large.
MAX_PARAMS = 5_000_000


def shrink(defaults: dict) -> dict:
    """The config fields to override, from a config class's ``defaults``: every
    field recognised by name set small and consistent (the head dimension is
    ``64 / heads``; 2 key/value heads for the 4 query heads wherever the config
    has the field, so that every model that can group its queries does; token ids
    below a 128-word vocabulary; at least 64 positions). Fields it does not know
    keep their defaults; special token ids at or above the vocabulary are dropped
    (None)."""
    out = {}

    def small(names, value, only_int=True):
        for name in names:
            v = defaults.get(name)
            if isinstance(v, bool) or (only_int and not isinstance(v, int)):
                continue
            out[name] = value

    small(LAYERS, 2)
    small(WIDTH, WIDTH_)
    small(HEADS, HEADS_)
    for name in KV_HEADS:
        v = defaults.get(name)
        if isinstance(v, int) and not isinstance(v, bool):
            if name == "num_key_value_groups":
                out[name] = 2
            else:
                out[name] = 2  # grouped-query: 2 key/value heads for 4 query heads
    small(HEAD_DIM, HEAD_DIM_)
    small(FFN, 128)
    small(VOCAB, 128)
    for name in POSITIONS:
        v = defaults.get(name)
        if isinstance(v, int) and not isinstance(v, bool) and v < 64:
            out[name] = 64
        elif isinstance(v, int) and not isinstance(v, bool):
            out[name] = min(v, 512)
    small(EXPERTS, 4)
    small(EXPERTS_PER_TOKEN, 2)
    if any(isinstance(defaults.get(e), int) for e in EXPERTS):  # DeepSeek-V2: None by default
        out.update({k: 2 for k in EXPERTS_PER_TOKEN if k in defaults and defaults[k] is None})
    for name, v in defaults.items():
        if name.endswith("token_id") and isinstance(v, int) and not isinstance(v, bool) and v >= 128:
            out[name] = None
        if name.endswith("token_id") and isinstance(v, list):
            out[name] = [t for t in v if isinstance(t, int) and t < 128] or None
    # Per-layer lists (layer types, sliding windows, ...) cut to the layer count,
    # keeping a second kind of layer where the list has one (a hybrid's attention).
    for name, v in defaults.items():
        if isinstance(v, list) and name in ("layer_types", "block_types", "attention_layers",
                                            "layers_block_type", "mlp_layer_types"):
            out[name] = _two_kinds(v)
    if "attn_layer_indices" in defaults:  # Bamba: none (all Mamba) by default
        out["attn_layer_indices"] = [1]
    for kind in ("attn", "expert"):  # Jamba: every 8th layer from the 4th attends
        if (defaults.get(f"{kind}_layer_period") or 0) > 2:
            out[f"{kind}_layer_period"], out[f"{kind}_layer_offset"] = 2, 1
    if isinstance(defaults.get("sliding_window"), int) and defaults["sliding_window"] > 64:
        out["sliding_window"] = 64
    # Multi-head latent attention (DeepSeek): its own head dimensions and ranks.
    for name, value in (("qk_rope_head_dim", 8), ("qk_nope_head_dim", 8), ("v_head_dim", 16),
                        ("kv_lora_rank", 32), ("q_lora_rank", 32), ("rotary_dim", 8),
                        ("n_group", 1), ("topk_group", 1), ("moe_k", 2),
                        ("first_k_dense_replace", 1), ("n_shared_experts", 1)):
        v = defaults.get(name)
        if isinstance(v, int) and not isinstance(v, bool):
            out[name] = value
    if "qk_rope_head_dim" in defaults and "head_dim" in defaults:
        out["head_dim"] = out["qk_rope_head_dim"]  # DeepSeek: the rotary part's dimension
    # Sub-configs (a text model inside a multimodal one), shrunk the same way.
    for name, v in defaults.items():
        if name.endswith("_config") and isinstance(v, dict):
            out[name] = {**v, **shrink(v)}
    if "num_labels" in defaults or "id2label" in defaults:
        out["num_labels"] = 3
    out.update(_shrink_images_and_audio(defaults))
    return out


def _two_kinds(kinds: list) -> list:
    """Two layers' kinds: the first, then the first of another kind if there is one.

    >>> _two_kinds(["linear", "linear", "full"]), _two_kinds(["a", "a"])
    (['linear', 'full'], ['a', 'a'])
    """
    other = [k for k in kinds if k != kinds[0]][:1] if kinds else []
    return (kinds[:1] + other) if other else kinds[:2]


def _shrink_images_and_audio(defaults: dict) -> dict:
    """Images 32 × 32; a spectrogram of 32 mel bins (AST: 64 frames; Whisper: 16
    positions, 32 frames); a feature encoder of 32 channels and a small positional
    convolution; no layer drop and no time or feature masking (they draw at random
    which layers and frames a step runs, which a prediction cannot know)."""
    out = {}
    if isinstance(defaults.get("image_size"), int):
        out["image_size"] = 32
    if isinstance(defaults.get("num_mel_bins"), int):
        out["num_mel_bins"] = 32
        if isinstance(defaults.get("max_length"), int):
            out["max_length"] = 64
        if isinstance(defaults.get("max_source_positions"), int):
            out["max_source_positions"] = 16
    if isinstance(defaults.get("conv_dim"), (list, tuple)):
        out["conv_dim"] = [32] * len(defaults["conv_dim"])
    for name, value in (("num_conv_pos_embeddings", 16), ("classifier_proj_size", 16)):
        if isinstance(defaults.get(name), int):
            out[name] = value
    out.update(_shrink_stages(defaults))
    for name in ("layerdrop", "encoder_layerdrop", "decoder_layerdrop", "mask_time_prob",
                 "mask_feature_prob"):
        if isinstance(defaults.get(name), float):
            out[name] = 0.0
    return out


def architectures(only=None, subset=False, others=10, limit=None, mappings=None,
                  sample=None, every=1):
    """``[(mapping, class name)]``, each class once, in mapping then name order;
    ``mappings``: the short names of those to take (``image_classification``);
    ``sample``: at most that many of each family of a mapping (:func:`family`);
    ``every``: with ``sample``, the families of a mapping one in ``every`` (by name)."""
    from transformers.models.auto import modeling_auto

    seen, rows = set(), []
    for i, mapping in enumerate(MAPPINGS):
        if mappings and _short(mapping) not in mappings:
            continue
        names = []
        for value in getattr(modeling_auto, mapping).values():
            names += list(value) if isinstance(value, (list, tuple)) else [value]
        names = sorted(set(names))
        if sample:
            names = _sampled(getattr(modeling_auto, mapping), names, sample, every)
        if subset and i > 0:
            names = [n for n in names if n not in seen][:others]
        for name in names:
            if name in seen or (only and not any(o in name for o in only)):
                continue
            seen.add(name)
            rows.append((_short(mapping), name))
    return rows[:limit] if limit else rows


def family(model_type: str) -> str:
    """A model type's family: its leading letters (``qwen2_moe`` and ``qwen3`` are
    ``qwen``, ``gpt_neox`` is ``gpt``).

    >>> family("qwen2_moe"), family("gpt_neox"), family("xlm-roberta")
    ('qwen', 'gpt', 'xlm')
    """
    import re

    return re.match(r"[a-z]*", model_type).group() or model_type


def _sampled(mapping: dict, names: list, k: int, every: int = 1) -> list:
    """The first ``k`` (by name) of ``names`` of each family of ``mapping``'s model
    types, of one family in ``every`` (in the order of their first name)."""
    of = {}
    for model_type, value in mapping.items():
        for name in (value if isinstance(value, (list, tuple)) else [value]):
            of.setdefault(name, family(model_type))
    order = list(dict.fromkeys(of.get(name, name) for name in names))
    kept = set(order[::every])
    taken, out = {}, []
    for name in names:
        f = of.get(name, name)
        if f in kept and taken.get(f, 0) < k:
            taken[f] = taken.get(f, 0) + 1
            out.append(name)
    return out


def _short(mapping: str) -> str:
    return mapping.replace("MODEL_FOR_", "").replace("_MAPPING_NAMES", "").lower()


def build(name):
    """``(model, spec, None)`` or ``(None, model_args, why)``: the config's
    defaults shrunk, built on the meta device through ``parse_spec``."""
    from complexity.zoo import parse_spec

    spec = parse_spec(f"hf:{name}", {})
    factory = spec.factory
    try:
        defaults = factory.config_cls().to_dict()
    except Exception as e:
        return None, {}, f"default config fails: {reason(e)}"
    args = {k: v for k, v in shrink(defaults).items() if k in factory.fields}
    if name.endswith("ForSequenceClassification") and "pad_token_id" in factory.fields \
            and args.get("pad_token_id", defaults.get("pad_token_id")) is None:
        # it pools at the last non-pad token and needs a pad id; a causal LM given one
        # checks the ids for padding (Tensor.item(), which meta tensors refuse)
        args["pad_token_id"] = 0
    if _pools_at_eos(factory.model_cls) and "eos_token_id" in factory.fields:
        args["eos_token_id"] = eos_in_every_row()
    try:
        try:
            spec = parse_spec(f"hf:{name}", args)
        except Exception:  # a config that refuses None for a token id: small ids instead
            args = _small_token_ids(args)
            spec = parse_spec(f"hf:{name}", args)
        config = spec.factory.config(**args)
        # mixture-of-experts layers: the per-expert loop (grouped_mm wants bfloat16 on the CPU)
        config._experts_implementation = "eager"
        with torch.device("meta"):
            model = spec.factory.model_cls(config)
    except Exception as e:
        return None, args, reason(e)
    n = sum(p.numel() for p in model.parameters())
    if n > MAX_PARAMS:
        return None, args, (f"not shrunk enough: {n / 1e6:.0f} M parameters (a field "
                            f"`shrink` does not know keeps it large)")
    return model, spec, None


#: Per-stage lists of a vision backbone (ConvNeXt, Swin, CvT, LeViT …).
STAGE_DEPTHS = ("depths", "depth", "num_layers_per_stage", "stage_depths")
STAGE_WIDTHS = ("hidden_sizes", "embed_dims", "embed_dim", "dims", "hidden_dims", "widths",
                "stage_dims", "key_dim")
STAGE_HEADS = ("num_heads", "num_attention_heads", "heads", "num_attention_heads_per_stage")


def _shrink_stages(defaults: dict) -> dict:
    """Per-stage lists of ints: one block per stage, widths 16, 32, 64 …, heads 1, 2,
    4 … (each width a multiple of its heads)."""
    out = {}
    for names, make in ((STAGE_DEPTHS, lambda i: 1), (STAGE_WIDTHS, lambda i: 16 * 2 ** i),
                        (STAGE_HEADS, lambda i: 2 ** i)):
        for name in names:
            v = defaults.get(name)
            if isinstance(v, (list, tuple)) and v and all(
                    isinstance(x, int) and not isinstance(x, bool) for x in v):
                out[name] = [make(i) for i in range(len(v))]
    return out


def _pools_at_eos(model_cls) -> bool:
    """Whether the model pools at its end-of-sequence tokens (Bart's sequence
    classifier: ``hidden_states[input_ids.eq(eos_token_id), :]``, which raises
    unless every example holds as many as the others, at least one)."""
    import inspect

    try:
        return "eos_mask" in inspect.getsource(model_cls.forward)
    except (OSError, TypeError):
        return False


def eos_in_every_row() -> int:
    """The smallest token id that every example of the benchmark's batch (the
    fixed draw of :func:`complexity.cost.step.batch.make_input`) holds equally
    often, at least once: the end-of-sequence id of a model that pools there (a
    benchmark artefact: random ids rarely hold one)."""
    from complexity.cost.step.batch import make_input

    ids = make_input(SHAPE, torch.long, 128)
    counts = torch.stack([torch.bincount(row, minlength=128) for row in ids])
    ok = (counts.min(0).values == counts.max(0).values) & (counts[0] > 0)
    return int(ok.nonzero()[0, 0])


def _small_token_ids(args: dict) -> dict:
    """``args`` with each token id ``shrink`` dropped (None) set to a distinct id
    below the vocabulary instead, from 127 down (a config may validate them)."""
    out, free = dict(args), 127
    for name in sorted(args):
        if name.endswith("token_id") and args[name] is None:
            out[name], free = free, free - 1
    return out


def batch_input(spec):
    """``(shape, input_dtype/input_high)`` of a batch of 2: token ids (2, 16), raw
    audio (2, :data:`AUDIO_SAMPLES`), else the spec's default input at batch 2."""
    if spec.input_dtype is not None:
        return SHAPE, dict(input_dtype=torch.long, input_high=128)
    if spec.rank == 2:
        return (2, AUDIO_SAMPLES), {}
    return (2, *spec.default_input[1:]), {}


def run_one(mapping, name):
    """Rows for one architecture: one per mode, or one saying why it did not build."""
    try:
        model, spec, why = build(name)
    except Exception as e:
        model, why = None, reason(e)
    if model is None:
        return [dict(name=name, group=mapping, built=False, why=why)]
    if spec.default_input is None:
        return [dict(name=name, group=mapping, built=False,
                     why=f"no input known for its {type(model).main_input_name}")]
    shape, kw = batch_input(spec)
    return compare(model, shape, name, mapping, **kw)


INTRO = (f"Every architecture of transformers' {', '.join(MAPPINGS)} built from its "
         "config's defaults shrunk by `benchmarks/text_zoo.py`'s `shrink` (2 layers, width "
         "64, 4 heads, grouped-query key/value heads 2, feed-forward 128, vocabulary 128, "
         "images 32 × 32, 32 mel bins, no layer drop or time masking) on the meta device; "
         "input at batch 2: (2, 16) token ids, 32 × 32 images, 4000 audio samples or the "
         "shrunk spectrogram; `full` and `last` training; error % = "
         "(predicted − measured) / measured of a real CPU step "
         "(`measure(how=\"real\")`). Regenerate: `python benchmarks/text_zoo.py`.")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="",
                        help="comma-separated substrings of class names (Llama,Qwen)")
    parser.add_argument("--subset", action="store_true",
                        help="every causal LM plus the first --others of each other mapping")
    parser.add_argument("--others", type=int, default=10, help="with --subset (10)")
    parser.add_argument("--limit", type=int, default=None, help="the first N architectures")
    parser.add_argument("--sample", type=int, default=None,
                        help="at most N architectures of each family (qwen, gpt …) of a mapping")
    parser.add_argument("--every", type=int, default=1,
                        help="with --sample, one family in K of each mapping (by name)")
    parser.add_argument("--mappings", default="", help="comma-separated, of " + ", ".join(
        _short(m) for m in MAPPINGS) + " (default: all)")
    parser.add_argument("--timeout", type=int, default=120,
                        help="seconds per architecture (120)")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))), "reports", "text_zoo.md"), help="the report's path")
    parser.add_argument("--note", default="", help="a line added below the introduction")
    a = parser.parse_args(argv)
    import transformers

    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    mappings = [m for m in a.mappings.split(",") if m]
    unknown = [m for m in mappings if m not in {_short(x) for x in MAPPINGS}]
    if unknown:
        parser.error(f"--mappings {unknown[0]!r}: not one of "
                     + ", ".join(_short(m) for m in MAPPINGS))
    todo = architectures([o for o in a.only.split(",") if o], a.subset, a.others, a.limit,
                         mappings, a.sample, a.every)
    total = len(architectures())
    note = a.note or (f"A deterministic subset: every causal-LM architecture plus the first "
                      f"{a.others} (by name) of each other mapping." if a.subset else "")
    if a.sample and not a.note:
        note += (f" A deterministic sample: the first {a.sample} (by name) of each family "
                 "(a model type's leading letters: qwen2_moe and qwen3 are one)"
                 + (f" of one family in {a.every} (by name)" if a.every > 1 else "")
                 + " of each mapping.")
    command = " ".join(["python benchmarks/text_zoo.py", *(sys.argv[1:] if argv is None
                                                           else argv)])
    intro = INTRO.replace("`python benchmarks/text_zoo.py`", f"`{command}`") + (
        f"\n\n{note.strip()}" if note else "") + (
        f"\n\nMachine: {os.cpu_count()} CPU cores, load average "
        f"{os.getloadavg()[0]:.1f} at the start (shared with other jobs); "
        f"torch {torch.__version__}, transformers {transformers.__version__}.")
    run(todo, run_one, a.out, lambda rows, seconds: report(
        rows, total, seconds, "Text models: predicted vs a real CPU step", intro),
        a.timeout, "text zoo")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
