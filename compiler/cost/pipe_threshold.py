"""The prefill pipeline's threshold (design.pipe_min_tokens, layer_traits pipe_min_t): the fewest tokens a
call needs to run the two halves (each streams the weights, so a short call, a speculative verify call of
2 rows, pays the stream twice). The DSE sets it per design from the engine's projection (cost/model.py,
whose `pipelined` reads the field); docs/hls.md, docs/performance.md "The prefill pipeline"."""

from __future__ import annotations

from edgellm.boards import Board
from edgellm.compiler.cost import model as cost_model
from edgellm.compiler.design import DesignParams
from edgellm.models.config import ModelConfig

_PIPE_MIN: dict[tuple, int] = {}  # pipe_min_tokens_for by _key
_HALVES_PAY: dict[tuple, bool] = {}  # halves_pay by (_key, tokens)


def _key(cfg: ModelConfig, board: Board, p: DesignParams) -> tuple:
    """The memo key: the fields the engine's projection reads (cost_model.PERF_FIELDS) but the threshold."""
    return (cfg, board, *(getattr(p, f) for f in cost_model.PERF_FIELDS if f != "pipe_min_tokens"))


def halves_pay(cfg: ModelConfig, board: Board, p: DesignParams, tokens: int) -> bool:
    """Whether a call of `tokens` tokens at p.decode_context is projected no slower in the layers with the
    prefill pipeline's two halves than in one pass (memoized)."""
    key = (_key(cfg, board, p), tokens)
    if key not in _HALVES_PAY:
        seq, pipe = p.replace(pipe_min_tokens=1 << 16), p.replace(pipe_min_tokens=2)
        c = p.decode_context
        _HALVES_PAY[key] = (cost_model.call(cfg, board, pipe, tokens, c).parts["layers"]
                            <= cost_model.call(cfg, board, seq, tokens, c).parts["layers"])
    return _HALVES_PAY[key]


def pipe_min_tokens_for(cfg: ModelConfig, board: Board, p: DesignParams) -> int:
    """The pipe_min_tokens p should be built with: the fewest tokens t (2 .. prefill_token_block) whose
    call the halves do not slow (halves_pay); prefill_token_block + 1 when none (the pipeline then never
    runs); 2 without the pipeline (memoized)."""
    if not p.prefill_pipeline or not p.overlap:
        return 2
    key = _key(cfg, board, p)
    if key not in _PIPE_MIN:
        pb = p.prefill_token_block
        _PIPE_MIN[key] = next((t for t in range(2, pb + 1) if halves_pay(cfg, board, p, t)), pb + 1)
    return _PIPE_MIN[key]
