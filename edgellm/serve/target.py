"""What `serve` and `chat` talk to: a compiled project on a device, or a checkpoint on a CPU backend.

DIR|MODEL: a directory holding manifest.json is a compiled project (run on --device: the board or the
emulator); anything else is a checkpoint (a Hugging Face directory or a .gguf; none = the shipped tiny
model) run on a CPU --backend (golden, onnx, torch), as `generate` runs it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgellm.errors import EdgeLLMError
from edgellm.runtime.chat_template import ChatTemplate, PlainText, template_for

Info = Callable[[str], None]


@dataclass
class Target:
    """An engine (backend-like: reset / forward / config / length) with its tokenizer and template."""

    name: str  # the model id clients see
    engine: Any
    codec: Any  # edgellm.commands.generate.TextCodec
    template: ChatTemplate | PlainText
    device: str  # "emulator (C simulation)", "golden", ...
    spec: Any = None  # runtime.speculative.SpecConfig: every generation verifies drafts (None: plain decode)

    @property
    def context(self) -> int:
        """Most positions a prompt and its reply may take."""
        return int(self.engine.config.max_context)

    @property
    def vocab_size(self) -> int:
        """Token ids are below this."""
        return int(self.engine.config.vocab_size)

    def stats(self) -> dict[str, float]:
        """The device session's counters (accelerator runs, seconds), or {} on a CPU backend."""
        fn = getattr(self.engine, "stats", None)
        return dict(fn()) if callable(fn) else {}


def is_project(path: Path | None) -> bool:
    """True for a compiled project directory (it holds manifest.json)."""
    return path is not None and path.is_dir() and (path / "manifest.json").exists()


def open_target(path: Path | None, device: str = "auto", backend: str = "golden", timeout_s: float = 60.0,
                verify: bool = True, name: str | None = None, info: Info | None = None,
                spec: Any = None) -> Target:
    """Open DIR (a compiled project, on `device`) or MODEL (a checkpoint, on the CPU `backend`). spec (a
    SpecConfig from the --speculate options) is checked against the engine here, before any request
    (commands/speculation.py for_engine)."""
    from dataclasses import replace

    from edgellm.commands.speculation import for_engine

    info = info or (lambda s: None)
    if is_project(path):
        assert path is not None
        if backend != "golden":
            raise EdgeLLMError(f"--backend applies to a MODEL; {path} is a compiled project (use --device)")
        t = _open_project(path, device, timeout_s, verify, name, info)
    elif device != "auto":
        where = path if path is not None else "the shipped tiny model"
        raise EdgeLLMError(f"--device applies to a compiled project; {where} is a checkpoint, run on a "
                           "CPU --backend (edgellm compile makes the project)")
    else:
        t = _open_model(path, backend, name, info)
    return replace(t, spec=for_engine(spec, t.engine)) if spec is not None else t


def _open_project(path: Path, device: str, timeout_s: float, verify: bool, name: str | None,
                  info: Info) -> Target:
    from edgellm.commands.run import check_timeout, codec_for, device_for, open_project
    from edgellm.runtime.session import Session

    check_timeout(timeout_s)
    p = open_project(path, verify=verify)
    codec = codec_for(p)
    if codec is None:
        raise EdgeLLMError(f"{path}: the project has no tokenizer; serve and chat need one")
    tp = p.chat_template_path
    source = _read_template(tp) if tp is not None else None
    template = template_for(source, codec)
    sess = Session(p, device_for(p, device, info), timeout_s=timeout_s)
    return Target(name or path.resolve().name, sess, codec, template, sess.name)


def _open_model(path: Path | None, backend: str, name: str | None, info: Info) -> Target:
    from edgellm.commands.generate import TextCodec, build_backend, load_checkpoint, model_specials
    from edgellm.commands.model_names import resolve_model_arg
    from edgellm.models.shipped import resolve_model_path

    local = resolve_model_arg(path)  # a hub id: its cached snapshot, served under the id
    resolved = resolve_model_path(local)
    qm, tok = load_checkpoint(local)
    if tok is None:
        raise EdgeLLMError(f"{resolved}: the model has no tokenizer; serve and chat need one")
    codec = TextCodec(tok, *model_specials(qm))
    template = template_for(qm.meta.get("chat_template"), codec)
    engine = build_backend(backend, qm)
    info(f"[backend] {backend}")
    hub_id = str(path) if path is not None and local != path else None
    return Target(name or hub_id or _model_name(resolved), engine, codec, template, backend)


def _model_name(p: Path) -> str:
    p = p.resolve()
    return p.stem if p.is_file() else p.name


def _read_template(p: Path) -> str:
    try:
        return p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise EdgeLLMError(f"{p}: cannot read the chat template: {e}") from None
