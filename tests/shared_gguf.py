"""GGUF test files shared by the GGUF tests (test_loaders_gguf, test_loaders_i2s, test_loaders_errors,
test_gguf_tokenizer, test_gguf_e2e): bitnet-architecture files written with gguf-py (TQ1_0 / TQ2_0) or
bitnet.cpp's I2_S layout (quantize_i2s), and small trained vocabularies stored as tokenizer.ggml.*
metadata. Test modules import these from here, never from each other."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from edgellm.models.config import ModelConfig
from edgellm.models.golden import GoldenModel
from edgellm.models.loaders.i2s import I2S_TYPE
from edgellm.models.random_model import random_model
from edgellm.runtime.pretok import LLAMA3_REGEX

Q = gguf.GGMLQuantizationType
I2S = "I2_S"  # write_gguf's qtype for bitnet.cpp's I2_S (GGML type 36, unknown to gguf-py)
LINEARS = {"q": "attn_q", "k": "attn_k", "v": "attn_v", "o": "attn_output",
           "gate": "ffn_gate", "up": "ffn_up", "down": "ffn_down"}
CFG = ModelConfig(hidden_size=256, n_layers=2, n_heads=4, n_kv_heads=2, ffn_size=512, vocab_size=300,
                  act="silu", max_context=64, rope_theta=10000.0, name="tiny-gguf")


def f16_scaled(cfg: ModelConfig, seed: int = 0):
    """A random model whose weight scales are 1/d for fp16 d, as TQ blocks can carry them."""
    qm = random_model(cfg, seed)
    for layer in qm.layers:
        for lin in layer.linears().values():
            d = np.float32(np.float16(np.float32(1.0) / lin.scale))
            lin.scale = np.float32(1.0) / d
    return qm


def quantize_i2s(w: np.ndarray) -> np.ndarray:
    """bitnet.cpp's quantize_i2_s (microsoft/BitNet src/ggml-bitnet-mad.cpp, the x86 ACT_PARALLEL
    layout; docs/weight_format.md) in numpy: scale = max|w| (double, stored as float32), code 1 for
    |w| < 1e-6, else 2 where w * scale > 0 and 0 otherwise; element 128b + 32g + p goes to bits
    (6 - 2g) of byte 32b + p; the scale follows the n/4 code bytes, in a 32-byte tail."""
    flat = np.asarray(w, np.float32).astype(np.float64).reshape(-1)
    n = flat.size
    assert n % 128 == 0
    scale = float(np.max(np.abs(flat))) if n else 0.0
    q = np.where(np.abs(flat) < 1e-6, 1, np.where(flat * scale > 0, 2, 0)).astype(np.uint8)
    q = q.reshape(n // 128, 4, 32)
    out = np.zeros(n // 4 + 32, np.uint8)
    out[: n // 4] = ((q[:, 0] << 6) | (q[:, 1] << 4) | (q[:, 2] << 2) | q[:, 3]).reshape(-1)
    out[n // 4: n // 4 + 4] = np.array([scale], "<f4").view(np.uint8)
    return out


def patch_tensor_info(path: Path, name: str, dims: list[int] | None = None, type_id: int | None = None,
                      offset: int | None = None) -> None:
    """Rewrite a 2-D tensor's GGUF info in place (dims innermost first, GGML type, data offset)."""
    data = bytearray(path.read_bytes())
    key = struct.pack("<Q", len(name.encode())) + name.encode() + struct.pack("<I", 2)
    at = data.index(key) + len(key)
    if dims is not None:
        data[at:at + 16] = struct.pack("<2Q", *dims)
    if type_id is not None:
        data[at + 16:at + 20] = struct.pack("<I", type_id)
    if offset is not None:
        data[at + 20:at + 28] = struct.pack("<Q", offset)
    path.write_bytes(bytes(data))


def write_gguf(qm, path: Path, qtype=Q.TQ2_0, arch: str = "bitnet", tokenizer_json: str | None = None,
               tweak: Callable[[str, np.ndarray], tuple[np.ndarray, object]] | None = None,
               meta: Callable[[gguf.GGUFWriter], None] | None = None) -> Path:
    """Write qm with llama.cpp's bitnet tensor names; tweak(name, float_data) may replace a tensor (or
    return (data, raw I2_S bytes));
    meta(writer) may add metadata. qtype I2S writes bitnet.cpp's I2_S linears (gguf-py cannot: they
    go in as I8 placeholders of the same size whose tensor info is then patched to type 36)."""
    c = qm.config
    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(c.n_layers)
    w.add_context_length(c.max_context)
    w.add_embedding_length(c.hidden_size)
    w.add_feed_forward_length(c.ffn_size)
    w.add_head_count(c.n_heads)
    w.add_head_count_kv(c.n_kv_heads)
    w.add_rope_freq_base(c.rope_theta)
    w.add_layer_norm_rms_eps(c.rms_eps)
    w.add_bos_token_id(c.bos_id)
    w.add_eos_token_id(c.eos_id)
    if tokenizer_json is not None:
        w.add_string("tokenizer.huggingface.json", tokenizer_json)
    if meta is not None:
        meta(w)
    i2s: dict[str, tuple[int, ...]] = {}

    def put(name: str, data: np.ndarray, qt) -> None:
        if tweak is not None:
            data, qt = tweak(name, data) or (data, qt)
        if isinstance(qt, np.ndarray) or qt == I2S:  # an ndarray: the I2_S bytes to write
            i2s[name] = data.shape
            raw = qt if isinstance(qt, np.ndarray) else quantize_i2s(data)
            w.add_tensor(name, raw.reshape(1, -1), raw_dtype=Q.I8)
        else:
            w.add_tensor(name, gguf.quants.quantize(data, qt), raw_dtype=qt)

    put("token_embd.weight", qm.embed_rows(np.arange(c.vocab_size)), Q.BF16)
    for i, layer in enumerate(qm.layers):
        p = f"blk.{i}."
        for n in ("attn_norm", "ffn_norm", "attn_sub_norm", "ffn_sub_norm"):
            put(p + n + ".weight", np.asarray(getattr(layer, n), np.float32), Q.F32)
        for n, gn in LINEARS.items():
            lin = layer.linears()[n]
            d = np.float32(1.0) / lin.scale  # dequantized weight = trit * d
            put(p + gn + ".weight", lin.dense().astype(np.float32) * d, qtype)
    put("output_norm.weight", qm.final_norm, Q.F32)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    for name, (rows, cols) in i2s.items():
        patch_tensor_info(path, name, dims=[cols, rows], type_id=I2S_TYPE)
    return path


def golden_logits(qm) -> np.ndarray:
    """The golden model's logits of qm for a fixed six-token prompt."""
    g = GoldenModel(qm)
    return g.forward(np.array([1, 9, 250, 3, 3, 77]), g.new_cache(8))



# --- tokenizers as GGUF metadata -----------------------------------------------------------------

CORPUS = [
    "Once upon a time there was a little girl who lived in a village near the forest.",
    "It's 2024; we'll see what they've done -- don't you think? I'M sure you'd agree.",
    "def f(x):\n    return x ** 2  # square\n\nfor i in range(10):\n\tprint(f(i), end=', ')\n",
    "Numbers: 3.14159, 42, 1,000,000 and 1234567890 or 007.",
    "Tabs\tand\nnewlines\n\n  indented   spaces   everywhere   ", "Café naïve résumé coöperate über",
    "中文字符 and 🙂🚀 emoji ✨", "<|begin_of_text|>Hello<|eot_id|> world",
] * 4
TEXTS = [*CORPUS[:8], "", " ", "   x", "hello  world", "a\n\n\nb", "🙂🙂 🚀👩\u200d💻", "ÆØÅ ÿ ſ",
         "数字123 and ٣٤٥", "x<|eot_id|>y<|begin_of_text|>", "<think>why</think>", "  <s> </s> <unk>",
         "ｆｕｌｌ width", "\r\n\r\n", "a" * 40, "mixed 3rd 1st 22nd 12345678", "'s 'S 'RE 'll ſ'ſ",
         "never seen zqxjv tokens ƀƁƂ 𝔘𝔫𝔦", "\u0301combining e\u0301", "x\u00a0y\u3000z\u2028"]


def vocab_of(tok: Any) -> list[str]:
    """A trained tokenizers.Tokenizer's tokens in id order."""
    v = json.loads(tok.to_str())["model"]["vocab"]
    return [t for t, _ in sorted(v.items(), key=lambda x: x[1])]


def gpt2_vocab(pre: str) -> dict[str, Any]:
    """A byte-level BPE trained with the Llama-3 split, three control tokens and a user-defined one."""
    import tokenizers
    from tokenizers import Regex, models, pre_tokenizers, trainers

    tk = tokenizers.Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_REGEX), "isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"]
    tk.train_from_iterator(CORPUS, trainers.BpeTrainer(
        vocab_size=500, special_tokens=specials, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokens = [*vocab_of(tk), "<think>"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in json.loads(tk.to_str())["model"]["merges"]]
    types = [3 if t in specials else 4 if t == "<think>" else 1 for t in tokens]
    return {"model": "gpt2", "pre": pre, "tokens": tokens, "merges": merges, "types": types,
            "bos": 0, "eos": 2}


def spm_vocab() -> dict[str, Any]:
    """A SentencePiece-style vocabulary: <unk> <s> </s>, 256 byte tokens, BPE pieces scored by rank;
    its alphabet leaves out rare characters, which then go through byte fallback."""
    import tokenizers
    from tokenizers import models, pre_tokenizers, trainers

    tk = tokenizers.Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first", split=True)
    tk.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=400, limit_alphabet=70,
                                                       show_progress=False))
    pieces = vocab_of(tk)
    byte_tokens = [f"<0x{b:02X}>" for b in range(256)]
    return {"model": "llama", "tokens": ["<unk>", "<s>", "</s>", *byte_tokens, *pieces],
            "scores": [0.0] * 259 + [-float(i) for i in range(len(pieces))],
            "types": [2, 3, 3] + [6] * 256 + [1] * len(pieces), "bos": 1, "eos": 2, "unk": 0}


def tokenizer_meta(v: dict[str, Any], **kw: Any):
    """write_gguf's meta hook: the vocabulary v as tokenizer.ggml.* keys (kw: add_bos, add_space_prefix,
    chat_template, or a key name -> value to override / None to leave out)."""
    keys = {"tokenizer.ggml.model": v["model"], "tokenizer.ggml.pre": v.get("pre"),
            "tokenizer.ggml.tokens": v["tokens"], "tokenizer.ggml.scores": v.get("scores"),
            "tokenizer.ggml.merges": v.get("merges"), "tokenizer.ggml.token_type": v["types"],
            "tokenizer.ggml.unknown_token_id": v.get("unk"),
            "tokenizer.ggml.add_bos_token": kw.pop("add_bos", True),
            "tokenizer.ggml.add_space_prefix": kw.pop("add_space_prefix", None),
            "tokenizer.chat_template": kw.pop("chat_template", "{{ bos_token }}{% for m in messages %}"
                                              "{{ m['content'] }}{% endfor %}")} | kw

    def put(w: gguf.GGUFWriter) -> None:
        for k, val in keys.items():
            if val is None:
                continue
            if isinstance(val, list):
                w.add_array(k, val)
            elif isinstance(val, bool):
                w.add_bool(k, val)
            elif isinstance(val, int):
                w.add_uint32(k, val)
            else:
                w.add_string(k, val)
    return put


def model_file(tmp: Path, v: dict[str, Any], name: str = "m.gguf", qtype: Any = None, seed: int = 0,
               **kw: Any) -> Path:
    """A small random bitnet GGUF whose embedding has one row per token of v, with v's tokenizer."""
    cfg = ModelConfig(**(CFG.to_dict() | {"vocab_size": len(v["tokens"]), "bos_id": v["bos"],
                                          "eos_id": v["eos"], "name": name}))
    extra = {"qtype": qtype} if qtype is not None else {}
    return write_gguf(f16_scaled(cfg, seed), tmp / name, meta=tokenizer_meta(v, **kw), **extra)
