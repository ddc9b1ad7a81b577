"""Frontend: QuantModel -> ModelGraph (unfused, in the golden model's op order)."""

from __future__ import annotations

from edgellm.compiler.ir import ModelGraph, Op
from edgellm.errors import EdgeLLMError
from edgellm.models.weights import LowBitLinear, QuantModel


def _linear(g: ModelGraph, name: str, layer: int, src: tuple[str, str], out: str, param: str,
            bias: str | None = None) -> None:
    """A ternary linear (its scale), or a W{b}A8 low-bit one (bits, group, the f32 bias param if any)."""
    lin = g.params[param]
    n, k = lin.shape
    g.tensor(out, n)
    if isinstance(lin, LowBitLinear):
        g.add(Op(name, "lowbit_linear", list(src), [out], layer,
                 {"shape": (n, k), "bits": lin.bits, "group": lin.group, "source": lin.source,
                  "params": [param] + ([bias] if bias else [])}))
        return
    g.add(Op(name, "ternary_linear", list(src), [out], layer,
             {"shape": (n, k), "wscale": float(lin.scale), "params": [param]}))


def check_linears(qm: QuantModel) -> bool:
    """True for a low-bit design (every linear of every layer W{b}A8), False for a ternary one; EdgeLLMError
    in one line for what the hardware does not build: a mix of ternary and low-bit linears, a low-bit LM
    head, q/k/v biases on a ternary model, a low-bit model with SubLN or without SiLU."""
    kinds = {isinstance(lin, LowBitLinear) for L in qm.layers for lin in L.linears().values()}
    if len(kinds) > 1:
        where = next(f"layers.{i}.{n}" for i, L in enumerate(qm.layers) for n, lin in L.linears().items()
                     if not isinstance(lin, LowBitLinear))
        raise EdgeLLMError(f"a model mixing ternary and low-bit (W{{b}}A8) linears does not compile: a "
                           f"design builds one matmul engine for all linears ({where} is ternary, others "
                           "low-bit)")
    lowbit = kinds == {True}
    if isinstance(qm.lm_head, LowBitLinear):
        raise EdgeLLMError("a low-bit LM head does not compile: the hardware's head is the int8 per-row head "
                           "(load the model without lowbit_head; run a low-bit head with generate/eval "
                           "--backend golden, onnx or torch)")
    c = qm.config
    if c.qkv_bias and not lowbit:
        raise EdgeLLMError("q/k/v biases compile on low-bit (W{b}A8) designs only: the ternary layer adds "
                           "none")
    if lowbit and (c.subln or c.act != "silu"):
        raise EdgeLLMError(f"low-bit designs build Llama/Qwen2 layers (SiLU GLU, no SubLN); {c.name} has "
                           f"act={c.act}, subln={c.subln}")
    return lowbit


def _norm_quant(g: ModelGraph, name: str, layer: int | None, x: str, gamma: str,
               width: int) -> tuple[str, str]:
    xn = g.tensor(f"{name}.out", width)
    g.add(Op(name, "rmsnorm", [x], [xn], layer, {"params": [gamma], "eps": g.config.rms_eps}))
    q8, qs = g.tensor(f"{name}.q8", width, "i8"), g.tensor(f"{name}.qs", 1, "f32_scale")
    g.add(Op(f"{name}.quant", "quantize", [xn], [q8, qs], layer))
    return q8, qs


def _sub_quant(g: ModelGraph, name: str, layer: int, x: str, gamma: object, width: int) -> tuple[str, str]:
    """Quantize x for the next linear, through SubLN (`<name>_sub_norm`) when the model has it."""
    if gamma is not None:
        g.params[f"{name}_sub_norm"] = gamma
        return _norm_quant(g, f"{name}_sub_norm", layer, x, f"{name}_sub_norm", width)
    q8, qs = g.tensor(f"{name}.q8", width, "i8"), g.tensor(f"{name}.qs", 1, "f32_scale")
    g.add(Op(f"{name}.quant", "quantize", [x], [q8, qs], layer))
    return q8, qs


def build_graph(qm: QuantModel) -> ModelGraph:
    """One forward pass of the model as ops: embedding, layers, final norm, LM head (check_linears refuses
    what the hardware does not build)."""
    check_linears(qm)
    c = qm.config
    g = ModelGraph(c)
    g.params["embed"] = qm.embed
    g.params["final_norm"] = qm.final_norm
    g.params["lm_head"] = qm.lm_head
    h = g.tensor("h0", c.hidden_size)
    g.add(Op("embed", "embed", ["tokens"], [h], None, {"params": ["embed"], "host": True}))
    for i, L in enumerate(qm.layers):
        p = f"layers.{i}"
        g.params[f"{p}.attn_norm"] = L.attn_norm
        g.params[f"{p}.ffn_norm"] = L.ffn_norm
        for n, lin in L.linears().items():
            g.params[f"{p}.{n}"] = lin
        src = _norm_quant(g, f"{p}.attn_norm", i, h, f"{p}.attn_norm", c.hidden_size)
        for n in ("q", "k", "v"):
            b = getattr(L, f"{n}_bias")
            if b is not None:
                g.params[f"{p}.{n}_bias"] = b
            _linear(g, f"{p}.{n}", i, src, f"{p}.{n}.out", f"{p}.{n}",
                    f"{p}.{n}_bias" if b is not None else None)
        for n, w in (("q", c.q_size), ("k", c.kv_size)):
            g.tensor(f"{p}.{n}.rope", w)
            g.add(Op(f"{p}.rope_{n}", "rope", [f"{p}.{n}.out"], [f"{p}.{n}.rope"], i,
                     {"theta": c.rope_theta, "head_dim": c.head_dim}))
        g.add(Op(f"{p}.kv_write", "kv_write", [f"{p}.k.rope", f"{p}.v.out"], [], i))
        a = g.tensor(f"{p}.attn.out", c.q_size)
        g.add(Op(f"{p}.attn", "attention", [f"{p}.q.rope"], [a], i,
                 {"heads": c.n_heads, "kv_heads": c.n_kv_heads, "head_dim": c.head_dim}))
        src = _sub_quant(g, f"{p}.attn", i, a, L.attn_sub_norm if c.subln else None, c.q_size)
        _linear(g, f"{p}.o", i, src, f"{p}.o.out", f"{p}.o")
        h_attn = g.tensor(f"{p}.h_attn", c.hidden_size)
        g.add(Op(f"{p}.res_attn", "residual", [h, f"{p}.o.out"], [h_attn], i))
        src = _norm_quant(g, f"{p}.ffn_norm", i, h_attn, f"{p}.ffn_norm", c.hidden_size)
        for n in ("gate", "up"):
            _linear(g, f"{p}.{n}", i, src, f"{p}.{n}.out", f"{p}.{n}")
        f = g.tensor(f"{p}.ffn_act", c.ffn_size)
        g.add(Op(f"{p}.act", "act_gate", [f"{p}.gate.out", f"{p}.up.out"], [f], i, {"act": c.act}))
        src = _sub_quant(g, f"{p}.ffn", i, f, L.ffn_sub_norm if c.subln else None, c.ffn_size)
        _linear(g, f"{p}.down", i, src, f"{p}.down.out", f"{p}.down")
        h = g.tensor(f"{p}.h_out", c.hidden_size)
        g.add(Op(f"{p}.res_ffn", "residual", [h_attn, f"{p}.down.out"], [h], i))
    src = _norm_quant(g, "final_norm", None, h, "final_norm", c.hidden_size)
    logits = g.tensor("logits", c.vocab_size)
    g.add(Op("lm_head", "lm_head", list(src), [logits], None, {"params": ["lm_head"],
                                                              "vocab": c.vocab_size}))
    return g
