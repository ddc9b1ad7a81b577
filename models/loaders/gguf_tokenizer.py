"""A GGUF's tokenizer (llama.cpp's tokenizer.ggml.* keys) as a tokenizer.json for runtime/bpe.py.

llama.cpp and bitnet.cpp converters store the vocabulary as metadata, not as tokenizer.json:
`tokenizer.ggml.model` "gpt2" (byte-level BPE: tokens, merges, token types, `pre` naming the split
pattern) or "llama" (SentencePiece BPE: tokens, scores, token types with "<0xAB>" byte tokens for
byte fallback; merges optional), special ids, `add_bos_token` / `add_eos_token` /
`add_space_prefix`, and `tokenizer.chat_template`. The tokenizer.json built here is what
transformers' GGUF converter builds (transformers/integrations/gguf/gguf_tokenizer_mapping.py: the
same vocabulary, merges, added tokens, normalizer, pre-tokenizer and decoder), except where
transformers departs from llama.cpp and from the model's original tokenizer:

- Llama-3-family `pre` ("llama-bpe", "falcon3", ...): whole words found in the vocabulary are not
  merged (ignore_merges) and BOS is added when the file does not say (llama.cpp's llama-vocab.cpp
  sets both for this family; the original Llama-3 tokenizer.json has both).
- "llama": `add_space_prefix` false gives no prefix space (transformers ignores the key).

docs/weight_format.md lists the checks; anything inconsistent is a one-line CheckpointError.
"""

from __future__ import annotations

from typing import Any, Protocol

from edgellm.errors import CheckpointError
from edgellm.runtime.bpe_steps import byte_to_unicode
from edgellm.runtime.pretok import LLAMA3_REGEX, QWEN2_REGEX

CONTROL, USER_DEFINED = 3, 4  # llama.cpp's token types (0 undefined .. 6 byte)
LLAMA3_PRE = ("llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2",
              "jina-v5-nano")  # llama.cpp's LLAMA3 pre type: ignore_merges, BOS by default
PRE_SPLITS = {**{p: LLAMA3_REGEX for p in (*LLAMA3_PRE, "dbrx", "smaug-bpe")},
              **{p: QWEN2_REGEX for p in ("qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "megrez")},
              **{p: None for p in ("gpt-2", "default", "")}}  # None: the GPT-2 pattern of ByteLevel
NO_VOCAB = ("none", "no_vocab")


class Meta(Protocol):
    """What is read from the file (gguf_loader.GGUFFile)."""

    path: Any

    def meta(self, key: str, default: Any = None) -> Any: ...


def _list(g: Meta, key: str, kind: type, n: int | None) -> list[Any] | None:
    """An array key whose items are all `kind` (and n of them when n is given), or None when absent."""
    v = g.meta(key)
    if v is None:
        return None
    ok = (float, int) if kind is float else kind
    if not isinstance(v, list) or not all(isinstance(x, ok) and not isinstance(x, bool) for x in v):
        raise CheckpointError(f"{g.path}: metadata {key} must be an array of {kind.__name__}")
    if n is not None and len(v) != n:
        raise CheckpointError(f"{g.path}: metadata {key} has {len(v)} entries, tokenizer.ggml.tokens has {n}")
    return v


def _scalar(g: Meta, key: str, kind: type, default: Any) -> Any:
    v = g.meta(key, default)
    if v is not None and (not isinstance(v, kind) or (kind is int and isinstance(v, bool))):
        raise CheckpointError(f"{g.path}: metadata {key} must be a {kind.__name__}, got {type(v).__name__}")
    return v


def chat_template(g: Meta) -> str | None:
    """tokenizer.chat_template, or None."""
    return _scalar(g, "tokenizer.chat_template", str, None)


def gguf_tokenizer(g: Meta, vocab_size: int) -> tuple[dict[str, Any], int | None, int | None] | None:
    """(tokenizer.json dict, bos id, eos id) from tokenizer.ggml.*, or None when the file has none.
    vocab_size: rows of the model's embedding, which the token list must match."""
    model = _scalar(g, "tokenizer.ggml.model", str, None)
    if model is None or model in NO_VOCAB:
        return None
    if model not in ("gpt2", "llama"):
        raise CheckpointError(f"{g.path}: tokenizer.ggml.model {model!r} is not supported (gpt2: byte-level "
                              "BPE, llama: SentencePiece)")
    tokens = _list(g, "tokenizer.ggml.tokens", str, None)
    if tokens is None:
        raise CheckpointError(f"{g.path}: tokenizer.ggml.model is {model!r} but tokenizer.ggml.tokens is "
                              "missing")
    n = len(tokens)
    if n != vocab_size:
        raise CheckpointError(f"{g.path}: tokenizer.ggml.tokens has {n} tokens, the model's vocabulary has "
                              f"{vocab_size} rows")
    types = _list(g, "tokenizer.ggml.token_type", int, n) or [1] * n
    merges = _merges(g, n)
    ids = {k: _id(g, k, n) for k in ("bos", "eos", "unknown", "padding")}
    pre = _scalar(g, "tokenizer.ggml.pre", str, "")
    llama3 = model == "gpt2" and pre in LLAMA3_PRE
    add_bos = _scalar(g, "tokenizer.ggml.add_bos_token", bool, model == "llama" or llama3)
    add_eos = _scalar(g, "tokenizer.ggml.add_eos_token", bool, False)
    if model == "gpt2":
        vocab, spec = _gpt2(g, tokens, merges, pre, llama3)
    else:
        vocab, spec = _llama(g, tokens, merges, _scalar(g, "tokenizer.ggml.add_space_prefix", bool, True))
    names = {k: tokens[i] for k, i in ids.items() if i is not None}
    spec["added_tokens"] = _added(tokens, types, vocab, names, byte_level=model == "gpt2")
    spec["post_processor"] = _template(names.get("bos") if add_bos else None, ids["bos"],
                                       names.get("eos") if add_eos else None, ids["eos"])
    return spec, ids["bos"], ids["eos"]


def _id(g: Meta, kind: str, n: int) -> int | None:
    key = f"tokenizer.ggml.{kind}_token_id"
    i = _scalar(g, key, int, None)
    if i is not None and not 0 <= i < n:
        raise CheckpointError(f"{g.path}: metadata {key} = {i} is outside the vocabulary [0, {n})")
    return i


def _merges(g: Meta, n: int) -> list[tuple[str, str]] | None:
    raw = _list(g, "tokenizer.ggml.merges", str, None)
    if raw is None:
        return None
    out = []
    for k, m in enumerate(raw):
        parts = m.split(" ")
        if len(parts) != 2 or not parts[0] or not parts[1]:
            raise CheckpointError(f"{g.path}: tokenizer.ggml.merges[{k}] = {m[:40]!r} is not two tokens "
                                  "separated by one space")
        out.append((parts[0], parts[1]))
    return out


def _vocab(g: Meta, tokens: list[str]) -> dict[str, int]:
    vocab: dict[str, int] = {}
    for i, t in enumerate(tokens):
        if t in vocab:
            raise CheckpointError(f"{g.path}: tokenizer.ggml.tokens lists {t[:40]!r} twice (ids {vocab[t]} "
                                  f"and {i})")
        vocab[t] = i
    return vocab


def _check_merges(g: Meta, merges: list[tuple[str, str]], vocab: dict[str, int]) -> None:
    for k, (a, b) in enumerate(merges):
        for t in (a, b, a + b):
            if t not in vocab:
                raise CheckpointError(f"{g.path}: tokenizer.ggml.merges[{k}] = {a + ' ' + b!r} names "
                                      f"{t[:40]!r}, which is not in tokenizer.ggml.tokens")


def _bpe_model(vocab: dict[str, int], merges: list[tuple[str, str]], *, byte_fallback: bool,
               ignore_merges: bool) -> dict[str, Any]:
    return {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
            "end_of_word_suffix": None, "fuse_unk": byte_fallback, "byte_fallback": byte_fallback,
            "ignore_merges": ignore_merges, "vocab": vocab, "merges": [list(m) for m in merges]}


def _gpt2(g: Meta, tokens: list[str], merges: list[tuple[str, str]] | None, pre: str,
          llama3: bool) -> tuple[dict[str, int], dict[str, Any]]:
    """Byte-level BPE: tokens spelled in GPT-2's byte alphabet (others re-spelled, as transformers)."""
    if pre not in PRE_SPLITS:
        raise CheckpointError(f"{g.path}: tokenizer.ggml.pre {pre!r} is not supported (supported: "
                              f"{', '.join(p for p in PRE_SPLITS if p)})")
    if merges is None:
        raise CheckpointError(f"{g.path}: tokenizer.ggml.model is 'gpt2' but tokenizer.ggml.merges is "
                              "missing")
    b2u = byte_to_unicode()
    alphabet = set(b2u.values())
    vocab = _vocab(g, [t if set(t) <= alphabet else "".join(b2u[b] for b in t.encode("utf-8"))
                       for t in tokens])
    _check_merges(g, merges, vocab)
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    decode = byte_level | {"add_prefix_space": True}  # as transformers writes it (the decoder ignores it)
    regex = PRE_SPLITS[pre]
    pre_tok: dict[str, Any] = byte_level if regex is None else {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": False},
        byte_level | {"use_regex": False}]}
    return vocab, {"version": "1.0", "truncation": None, "padding": None, "normalizer": None,
                   "pre_tokenizer": pre_tok, "decoder": decode,
                   "model": _bpe_model(vocab, merges, byte_fallback=False, ignore_merges=llama3)}


def _llama(g: Meta, tokens: list[str], merges: list[tuple[str, str]] | None,
           prefix_space: bool) -> tuple[dict[str, int], dict[str, Any]]:
    """SentencePiece BPE with byte fallback; merges from the file or, as transformers, from the scores."""
    vocab = _vocab(g, tokens)
    if merges is None:
        scores = _list(g, "tokenizer.ggml.scores", float, len(tokens))
        if scores is None:
            raise CheckpointError(f"{g.path}: tokenizer.ggml.model is 'llama' but it has neither "
                                  "tokenizer.ggml.merges nor tokenizer.ggml.scores")
        merges = merges_from_scores(vocab, [float(s) for s in scores])
    _check_merges(g, merges, vocab)
    decoders: list[dict[str, Any]] = [{"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
                                      {"type": "ByteFallback"}, {"type": "Fuse"}]
    if prefix_space:
        decoders.append({"type": "Strip", "content": " ", "start": 1, "stop": 0})
    return vocab, {"version": "1.0", "truncation": None, "padding": None, "normalizer": None,
                   "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581",
                                     "prepend_scheme": "first" if prefix_space else "never", "split": False},
                   "decoder": {"type": "Sequence", "decoders": decoders},
                   "model": _bpe_model(vocab, merges, byte_fallback=True, ignore_merges=False)}


def merges_from_scores(vocab: dict[str, int], scores: list[float]) -> list[tuple[str, str]]:
    """BPE merges a SentencePiece vocabulary implies: every split of a token into two tokens, ranked by
    the token's score (best first; ties: longer left part, then longer right part, then the order
    found), as transformers' tokenization_utils_base.generate_merges."""
    found: list[tuple[str, str, float]] = []
    for tok, i in vocab.items():
        local = [(tok[:k], tok[k:]) for k in range(1, len(tok)) if tok[:k] in vocab and tok[k:] in vocab]
        local.sort(key=lambda m: (vocab[m[0]], vocab[m[1]]))
        found.extend((a, b, scores[i]) for a, b in local)
    found.sort(key=lambda m: (m[2], len(m[0]), len(m[1])), reverse=True)
    return [(a, b) for a, b, _ in found]


def _added(tokens: list[str], types: list[int], vocab: dict[str, int], specials: dict[str, str],
           byte_level: bool) -> list[dict[str, Any]]:
    """Added tokens, as transformers adds them: control tokens (in a byte-level vocabulary only those
    spelled in its alphabet) and the bos/eos/unk/pad tokens as special, user-defined ones as not."""
    alphabet = set(byte_to_unicode().values())
    special = {t for t, ty in zip(tokens, types, strict=True)
               if ty == CONTROL and (not byte_level or set(t) <= alphabet)}
    special |= {t for t in specials.values() if t in vocab}
    plain = {t for t, ty in zip(tokens, types, strict=True) if ty == USER_DEFINED and t in vocab} - special
    out = [{"id": vocab[t], "content": t, "single_word": False, "lstrip": False, "rstrip": False,
            "normalized": False, "special": t in special} for t in special | plain]
    return sorted(out, key=lambda a: a["id"])


def _template(bos: str | None, bos_id: int | None, eos: str | None, eos_id: int | None) -> dict[str, Any]:
    """TemplateProcessing: [BOS] $A [EOS] as add_bos_token / add_eos_token say."""
    def seq(s: str, t: int) -> list[dict[str, Any]]:
        head = [{"SpecialToken": {"id": bos, "type_id": t}}] if bos is not None else []
        tail = [{"SpecialToken": {"id": eos, "type_id": t}}] if eos is not None else []
        return [*head, {"Sequence": {"id": s, "type_id": t}}, *tail]
    pairs = ((bos, bos_id), (eos, eos_id))
    specials = {t: {"id": t, "ids": [i], "tokens": [t]} for t, i in pairs if t is not None}
    return {"type": "TemplateProcessing", "single": seq("A", 0), "pair": seq("A", 0) + seq("B", 1),
            "special_tokens": specials}
