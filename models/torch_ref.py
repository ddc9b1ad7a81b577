"""The torch reference: a BitNet b1.58 decoder with fake quantization (QAT) and a KV cache.

It follows the golden model's math (models/golden.py): per-token absmax int8 activations, ternary
absmean weights with y = (x_q @ W_t^T) / (qs * scale) accumulated exactly, RoPE from
numerics.rope_tables, causal GQA softmax attention, optional SubLN, an int8 per-row LM head. Only
reduction orders (RMSNorm sums, softmax, exp) differ from the contract, so logits agree within a
small tolerance. kv_dtype "f16" rounds each new K (after RoPE) and V through binary16 (.half().float(),
round to nearest even) before it joins the cache, as the numerics plan's f16 KV cache does.
Straight-through estimators let the same module train (models/train_tiny.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgellm.errors import EdgeLLMError
from edgellm.models import numerics as nx
from edgellm.models.backend import register_backend
from edgellm.models.config import ModelConfig
from edgellm.models.weights import Int8Head, Layer, LowBitLinear, QuantModel, TernaryLinear


class _STE(torch.autograd.Function):
    """Forward returns the quantized value exactly; backward passes the gradient to the input."""

    @staticmethod
    def forward(ctx, x: Tensor, q: Tensor) -> Tensor:  # noqa: D102
        return q

    @staticmethod
    def backward(ctx, g: Tensor) -> tuple[Tensor, None]:  # noqa: D102
        return g, None


def act_quant(x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-token absmax int8 (numerics.quantize): (..., n) -> integer-valued q (..., n), qs (..., 1)."""
    qs = (127.0 / x.detach().abs().amax(dim=-1, keepdim=True).clamp_min(1e-5)).to(x.dtype)
    xs = x * qs
    q = torch.round(xs.detach()).clamp(-128.0, 127.0)
    return _STE.apply(xs, q), qs


def ternarize(w: Tensor) -> tuple[Tensor, Tensor]:
    """Absmean ternary: scale = 1/max(mean|W|, 1e-5); W_t = clamp(round(W*scale), -1, 1)."""
    scale = (1.0 / w.detach().abs().mean().clamp_min(1e-5)).to(w.dtype)
    return torch.round(w.detach() * scale).clamp(-1.0, 1.0), scale


class BitLinear(nn.Module):
    """Ternary linear with fake quantization; `fixed_scale` (from a QuantModel) overrides absmean."""

    def __init__(self, in_features: int, out_features: int, quant: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_features, in_features))  # latent (out, in)
        nn.init.normal_(self.weight, std=0.02)
        self.quant = quant
        self.register_buffer("fixed_scale", torch.zeros(()))  # 0: use absmean

    def scale(self) -> Tensor:
        """The weight_scale this linear quantizes with."""
        if float(self.fixed_scale) > 0:
            return self.fixed_scale
        return ternarize(self.weight)[1]

    def ternary(self) -> tuple[Tensor, Tensor]:
        """(W_t (out, in) in {-1,0,1}, scale) as float32."""
        s = self.scale()
        return torch.round(self.weight.detach() * s).clamp(-1.0, 1.0), s

    def forward(self, x: Tensor) -> Tensor:
        """x (..., in) fp32 -> (..., out) = (x_q @ W_t^T) / (qs * scale)."""
        if not self.quant:
            return F.linear(x, self.weight)
        q, qs = act_quant(x)
        s = self.scale().detach()
        ws = self.weight * s
        wt = _STE.apply(ws, torch.round(ws.detach()).clamp(-1.0, 1.0))
        return F.linear(q, wt) / (qs * s)


class GroupLinear(nn.Module):
    """A fixed low-bit linear (models/weights.LowBitLinear) as its dequantized float32 weights:
    y = (x_q @ W^T) / qs on int8 activations (W{b}A8, the golden model's lowbit_linear in float64
    instead of its per-group order), or x @ W^T with float activations (float_acts)."""

    def __init__(self, lin: LowBitLinear, float_acts: bool = False) -> None:
        super().__init__()
        self.register_buffer("weight", torch.from_numpy(lin.dequantize()))
        self.float_acts = float_acts

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        if self.float_acts:
            return F.linear(x, self.weight)
        q, qs = act_quant(x)
        return (F.linear(q.double(), self.weight.double()) / qs.double()).float()


class RMSNorm(nn.Module):
    """y = x * rsqrt(mean(x^2) + eps) * g."""

    def __init__(self, n: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        r = 1.0 / torch.sqrt((x * x).sum(-1, keepdim=True) / x.shape[-1] + self.eps)
        return (x * r) * self.weight


@dataclass
class TorchKVCache:
    """Per-layer post-RoPE keys and values, each (B, S, kv_heads, head_dim); `length` positions."""

    k: list[Tensor | None] = field(default_factory=list)
    v: list[Tensor | None] = field(default_factory=list)
    length: int = 0


class Block(nn.Module):
    """One decoder layer."""

    def __init__(self, cfg: ModelConfig, quant: bool, kv_dtype: str = "f32") -> None:
        super().__init__()
        c, h = cfg, cfg.hidden_size
        self.cfg = cfg
        self.kv_f16 = kv_dtype == "f16"  # K/V rounded to binary16 as the cache stores them
        self.attn_norm, self.ffn_norm = RMSNorm(h, c.rms_eps), RMSNorm(h, c.rms_eps)
        self.lin = nn.ModuleDict({n: BitLinear(i, o, quant) for n, (o, i) in c.linear_shapes().items()})
        self.attn_sub_norm = RMSNorm(c.q_size, c.rms_eps) if c.subln else None
        self.ffn_sub_norm = RMSNorm(c.ffn_size, c.rms_eps) if c.subln else None
        sizes = (("q", c.q_size), ("k", c.kv_size), ("v", c.kv_size))
        self.bias = (nn.ParameterDict({n: nn.Parameter(torch.zeros(size)) for n, size in sizes})
                     if c.qkv_bias else None)

    def _proj(self, n: str, x: Tensor) -> Tensor:
        """q/k/v projection plus its bias (Qwen2) when the model has them."""
        y = self.lin[n](x)
        return y if self.bias is None else y + self.bias[n]

    def forward(self, h: Tensor, cos: Tensor, sin: Tensor, i: int, past: TorchKVCache | None) -> Tensor:
        """h (B, T, hidden); cos/sin (T, head_dim/2) for the new positions."""
        c, (b, t, _) = self.cfg, h.shape
        x = self.attn_norm(h)
        q = _rope(self._proj("q", x).view(b, t, c.n_heads, c.head_dim), cos, sin)
        k = _rope(self._proj("k", x).view(b, t, c.n_kv_heads, c.head_dim), cos, sin)
        v = self._proj("v", x).view(b, t, c.n_kv_heads, c.head_dim)
        if self.kv_f16:
            k, v = k.half().float(), v.half().float()
        pos0 = 0
        if past is not None:
            pos0 = past.length
            if past.k[i] is not None:
                k, v = torch.cat([past.k[i], k], 1), torch.cat([past.v[i], v], 1)
            past.k[i], past.v[i] = k, v
        grp = c.n_heads // c.n_kv_heads
        kx = k.repeat_interleave(grp, dim=2).transpose(1, 2)  # (B, H, S, D)
        vx = v.repeat_interleave(grp, dim=2).transpose(1, 2)
        s_len = kx.shape[2]
        keys = torch.arange(s_len, device=h.device)
        mask = keys[None, :] <= (pos0 + torch.arange(t, device=h.device))[:, None]  # (T, S) visible
        a = F.scaled_dot_product_attention(q.transpose(1, 2), kx, vx, attn_mask=mask)  # (B, H, T, D)
        a = a.transpose(1, 2).reshape(b, t, c.q_size)
        if self.attn_sub_norm is not None:
            a = self.attn_sub_norm(a)
        h = h + self.lin["o"](a)
        x = self.ffn_norm(h)
        g, u = self.lin["gate"](x), self.lin["up"](x)
        f = (torch.relu(g) ** 2 if c.act == "relu2" else F.silu(g)) * u
        if self.ffn_sub_norm is not None:
            f = self.ffn_sub_norm(f)
        return h + self.lin["down"](f)


def _rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate-half RoPE on (B, T, heads, D) with tables (T, D/2)."""
    half = x.shape[-1] // 2
    a, b = x[..., :half], x[..., half:]
    c, s = cos[None, :, None, :], sin[None, :, None, :]
    return torch.cat([a * c - b * s, b * c + a * s], dim=-1)


class TorchModel(nn.Module):
    """BitNet b1.58 decoder per ModelConfig; quant=False gives the full-precision twin; kv_dtype
    "f16": the numerics plan's f16 KV cache rounding."""

    def __init__(self, cfg: ModelConfig, quant: bool = True, kv_dtype: str = "f32") -> None:
        super().__init__()
        if kv_dtype not in nx.KV_DTYPES:
            raise EdgeLLMError(f"kv_dtype {kv_dtype!r}: expected one of {', '.join(nx.KV_DTYPES)}")
        self.cfg, self.quant = cfg, quant
        self.embed = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        nn.init.normal_(self.embed.weight, std=0.02)
        self.blocks = nn.ModuleList([Block(cfg, quant, kv_dtype) for _ in range(cfg.n_layers)])
        self.final_norm = RMSNorm(cfg.hidden_size, cfg.rms_eps)
        self.head: nn.Parameter | None = None  # untied LM head (vocab, hidden)
        if not cfg.tied_embeddings:
            self.head = nn.Parameter(torch.empty(cfg.vocab_size, cfg.hidden_size))
            nn.init.normal_(self.head, std=0.02)
        self.register_buffer("head_q", torch.zeros(0), persistent=True)  # fixed int8 head (vocab, hidden)
        self.register_buffer("head_rs", torch.zeros(0), persistent=True)  # fixed row scales (vocab,)
        self.head_lowbit: GroupLinear | None = None  # a fixed low-bit LM head (QuantModel with one)
        cos, sin = cfg.rope_tables(cfg.max_context)
        self.register_buffer("cos", torch.from_numpy(cos), persistent=False)
        self.register_buffer("sin", torch.from_numpy(sin), persistent=False)

    def head_weight(self) -> Tensor:
        """Latent LM head (vocab, hidden): the embedding when tied."""
        return self.embed.weight if self.head is None else self.head

    def lm_head(self, x: Tensor) -> Tensor:
        """Normed x (B, T, hidden) -> logits (B, T, vocab), int8 x int8 per-row (golden.lm_head)."""
        if self.head_lowbit is not None:
            return self.head_lowbit(x)
        if not self.quant:
            return F.linear(x, self.head_weight())
        q, qs = act_quant(x)
        if self.head_q.numel():
            wq, rs = self.head_q, self.head_rs
        else:
            w = self.head_weight()
            rs = w.detach().abs().amax(dim=1).clamp_min(1e-8) / 127.0
            ws = w / rs[:, None]
            wq = _STE.apply(ws, torch.round(ws.detach()).clamp(-127.0, 127.0))
        if torch.is_grad_enabled():
            acc = F.linear(q, wq)
        else:  # exact integer accumulation, as the golden model does
            acc = F.linear(q.double(), wq.double()).float()
        return (acc / qs) * rs

    def new_cache(self) -> TorchKVCache:
        """An empty KV cache."""
        n = self.cfg.n_layers
        return TorchKVCache([None] * n, [None] * n, 0)

    def forward(self, tokens: Tensor, past: TorchKVCache | None = None) -> Tensor:
        """tokens (B, T) long at positions past.length.. -> logits (B, T, vocab); updates past."""
        pos0 = past.length if past is not None else 0
        t = tokens.shape[1]
        if pos0 + t > self.cfg.max_context:
            raise EdgeLLMError(f"sequence of {pos0 + t} tokens exceeds the context of {self.cfg.max_context}")
        cos, sin = self.cos[pos0:pos0 + t], self.sin[pos0:pos0 + t]
        h = self.embed(tokens)
        for i, blk in enumerate(self.blocks):
            h = blk(h, cos, sin, i, past)
        if past is not None:
            past.length = pos0 + t
        return self.lm_head(self.final_norm(h))

    # ----- conversion to / from the QuantModel every backend consumes -----

    @classmethod
    def from_quant(cls, qm: QuantModel, kv_dtype: str = "f32", float_acts: bool = False) -> TorchModel:
        """A model whose fake quantization reproduces qm exactly (fixed scales and int8 head; low-bit
        linears as GroupLinear). float_acts: the same (dequantized) weights with float activations and
        a float head (the int8 head's dequantized rows), the full-precision reference of accuracy runs."""
        c = qm.config
        m = cls(c, quant=not float_acts, kv_dtype=kv_dtype)
        with torch.no_grad():
            m.embed.weight.copy_(torch.from_numpy(qm.embed_rows(np.arange(c.vocab_size))))
            m.final_norm.weight.copy_(torch.from_numpy(np.asarray(qm.final_norm, np.float32)))
            for blk, L in zip(m.blocks, qm.layers, strict=True):
                blk.attn_norm.weight.copy_(torch.from_numpy(L.attn_norm))
                blk.ffn_norm.weight.copy_(torch.from_numpy(L.ffn_norm))
                if c.subln:
                    blk.attn_sub_norm.weight.copy_(torch.from_numpy(L.attn_sub_norm))
                    blk.ffn_sub_norm.weight.copy_(torch.from_numpy(L.ffn_sub_norm))
                for n, lin in L.linears().items():
                    if isinstance(lin, LowBitLinear):
                        blk.lin[n] = GroupLinear(lin, float_acts)
                        continue
                    s = np.float32(lin.scale)
                    blk.lin[n].weight.copy_(torch.from_numpy(lin.dense().astype(np.float32) / s))
                    blk.lin[n].fixed_scale.fill_(float(s))
                if blk.bias is not None:
                    for n in ("q", "k", "v"):
                        blk.bias[n].copy_(torch.from_numpy(getattr(L, f"{n}_bias")))
            m._set_head(qm.lm_head, float_acts)
        return m.eval()

    def _set_head(self, head: Int8Head | LowBitLinear, float_acts: bool) -> None:
        """The fixed LM head: int8 rows and row scales, or a GroupLinear."""
        if isinstance(head, LowBitLinear):
            self.head_lowbit = GroupLinear(head, float_acts)
            return
        if float_acts:  # the float head: the embedding when tied, else the int8 rows dequantized
            if self.head is not None:
                self.head.copy_(torch.from_numpy(head.w.astype(np.float32) * head.row_scale[:, None]))
            return
        self.head_q = torch.from_numpy(head.w.astype(np.float32))
        self.head_rs = torch.from_numpy(np.asarray(head.row_scale, np.float32))
        if self.head is not None:
            self.head.copy_(self.head_q * self.head_rs[:, None])

    def to_quant(self, bf16_embed: bool = False) -> QuantModel:
        """Ternarize (absmean, or the fixed scales) and quantize the head into a QuantModel."""
        c = self.cfg

        def f32(t: Tensor) -> np.ndarray:
            return t.detach().cpu().float().numpy().astype(np.float32)

        layers = []
        for blk in self.blocks:
            lins = {}
            for n, lin in blk.lin.items():
                wt, s = lin.ternary()
                lins[n] = TernaryLinear.from_ternary(f32(wt).astype(np.int8), float(s))
            layers.append(Layer(attn_norm=f32(blk.attn_norm.weight), ffn_norm=f32(blk.ffn_norm.weight),
                                attn_sub_norm=f32(blk.attn_sub_norm.weight) if c.subln else None,
                                ffn_sub_norm=f32(blk.ffn_sub_norm.weight) if c.subln else None, **lins))
        emb = f32(self.embed.weight)
        if bf16_embed:  # round to nearest even bf16, stored as bit patterns
            u = emb.view(np.uint32).astype(np.uint64)
            emb = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
        if self.head_q.numel():
            head = Int8Head(f32(self.head_q).astype(np.int8), f32(self.head_rs))
        elif self.head is None:
            widened = (emb.astype(np.uint32) << 16).view(np.float32) if bf16_embed else emb
            head = Int8Head.quantize(widened)
        else:
            head = Int8Head.quantize(f32(self.head))
        qm = QuantModel(c, emb, layers, f32(self.final_norm.weight), head, meta={"source": "torch_ref"})
        qm.validate()
        return qm


class TorchBackend:
    """TorchModel.from_quant(qm, kv_dtype) as a stateful backend (models/backend.py protocol)."""

    name = "torch"

    def __init__(self, model: QuantModel, kv_dtype: str = "f32") -> None:
        self.config = model.config
        self.model = TorchModel.from_quant(model, kv_dtype)
        self.cache = self.model.new_cache()

    @property
    def length(self) -> int:
        """Positions already in the KV cache."""
        return self.cache.length

    def reset(self) -> None:
        """Forget all positions."""
        self.cache = self.model.new_cache()

    def forward(self, tokens: np.ndarray, all_logits: bool = False) -> np.ndarray:
        """Append tokens (T,); logits float32 (T, vocab) or (1, vocab)."""
        tok = np.asarray(tokens, dtype=np.int64).reshape(-1)
        if tok.size == 0:
            raise EdgeLLMError("empty token sequence")
        if tok.min() < 0 or tok.max() >= self.config.vocab_size:
            raise EdgeLLMError(f"token id out of range [0, {self.config.vocab_size})")
        with torch.no_grad():
            logits = self.model(torch.from_numpy(tok)[None], self.cache)[0]
        out = logits.numpy().astype(np.float32)
        return out if all_logits else out[-1:]


register_backend("torch", TorchBackend)
