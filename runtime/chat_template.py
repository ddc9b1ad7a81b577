"""A model's chat template, rendered as transformers' `apply_chat_template` renders it (host side).

The template is the model's own Jinja source (tokenizer_config.json's / chat_template.jinja's
`chat_template`, GGUF's `tokenizer.chat_template`; a compiled project keeps it as chat_template.jinja).
It runs in Jinja2's immutable sandbox with the environment transformers builds: trim_blocks and
lstrip_blocks, the loopcontrols extension and the `{% generation %}` tag, a `tojson` that does not
escape HTML, `raise_exception`, `strftime_now`, a safe `dict` and a `namespace` that refuses
underscore names; the variables are `messages`, `add_generation_prompt`, `tools`, `documents` and the
tokenizer's special tokens (`bos_token`, `eos_token`). The rendered text is tokenized without adding a
BOS (the template writes it when the model wants one), as `apply_chat_template(tokenize=True)` does.

A model without a template gets `PlainText`: the messages as one running text (plain continuation).
Jinja2 is imported only when a template is compiled: the board's numpy-only runtime never needs it.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Protocol

from edgellm.errors import EdgeLLMError
from edgellm.runtime.text import check_utf8

Message = dict[str, Any]
MIN_JINJA = (3, 1, 6)  # older versions have known sandbox escapes (transformers refuses them too)
# Tokens that end an assistant turn in the common templates (llama.cpp's end-of-generation list); each
# one that the template's source names and the vocabulary holds stops a chat reply.
END_OF_TURN = ("<|eot_id|>", "<|eom_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
               "<|end_of_text|>", "<EOT>", "<|END_OF_TURN_TOKEN|>", "<｜end▁of▁sentence｜>")


class ChatTemplateError(EdgeLLMError):
    """A template that does not compile, or that refuses a conversation (raise_exception)."""


class Renderer(Protocol):
    """Messages -> prompt text. adds_bos: whether the text's tokens get the model's BOS in front."""

    adds_bos: bool

    def render(self, messages: list[Message], add_generation_prompt: bool = True) -> str:
        """The conversation as text, ending with the assistant's header when add_generation_prompt."""
        ...


class PlainText:
    """No template: the conversation as one running text. A reply continues the text it follows;
    every other message starts on a new line. Tokenized with the model's BOS in front, like a prompt."""

    adds_bos = True
    name = "plain text (the model has no chat template)"

    def render(self, messages: list[Message], add_generation_prompt: bool = True) -> str:
        out = ""
        for m in messages:
            if m["role"] != "assistant" and out:
                out += "\n"
            out += str(m["content"])
        return out


class ChatTemplate:
    """A compiled chat template; render() is apply_chat_template(..., tokenize=False)."""

    adds_bos = False
    name = "the model's chat template"

    def __init__(self, source: str, special_tokens: dict[str, str | None] | None = None) -> None:
        if not isinstance(source, str) or not source.strip():
            raise ChatTemplateError("the chat template is empty")
        self.source = source
        self.special_tokens = {k: v for k, v in (special_tokens or {}).items() if v is not None}
        self._template = _compile(source)

    def render(self, messages: list[Message], add_generation_prompt: bool = True, **extra: Any) -> str:
        """The rendered conversation; ChatTemplateError carries the template's own message."""
        import jinja2

        chat = [{k: v for k, v in m.items() if v is not None} for m in messages]
        kwargs = {**self.special_tokens, **extra}
        try:
            return str(self._template.render(messages=chat, tools=None, documents=None,
                                             add_generation_prompt=add_generation_prompt, **kwargs))
        except jinja2.TemplateError as e:
            raise ChatTemplateError(f"chat template: {_one_line(e)}") from None
        except (TypeError, ValueError, AttributeError, KeyError, IndexError, ArithmeticError,
                RecursionError) as e:
            raise ChatTemplateError(f"chat template failed ({type(e).__name__}: {_one_line(e)})") from None


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())[:300] or type(e).__name__


def _compile(source: str) -> Any:
    """The template compiled in the sandboxed environment transformers uses."""
    try:
        import jinja2
        from jinja2 import nodes
        from jinja2.ext import Extension, loopcontrols
        from jinja2.sandbox import ImmutableSandboxedEnvironment
    except ImportError:
        raise ChatTemplateError("chat templates need Jinja2: pip install \"edgellm[serve]\"") from None
    version = tuple(int(p) for p in jinja2.__version__.split(".")[:3] if p.isdigit())
    if version < MIN_JINJA:
        raise ChatTemplateError(f"chat templates need Jinja2 >= 3.1.6 (sandbox fixes); this is "
                                f"{jinja2.__version__}: pip install -U jinja2")

    class GenerationTag(Extension):
        """{% generation %}...{% endgeneration %}: renders its body (transformers marks it for masks)."""

        tags = {"generation"}

        def parse(self, parser: Any) -> Any:
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

        def _body(self, caller: Any) -> str:
            return str(caller())

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[GenerationTag, loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    env.globals["dict"] = _TemplateDict()
    env.globals["namespace"] = _namespace_class(jinja2)
    try:
        return env.from_string(source)
    except jinja2.TemplateSyntaxError as e:
        raise ChatTemplateError(f"the chat template does not compile (line {e.lineno}: "
                                f"{_one_line(e)})") from None
    except (jinja2.TemplateError, RecursionError, ValueError) as e:
        raise ChatTemplateError(f"the chat template does not compile ({_one_line(e)})") from None


def _tojson(x: Any, ensure_ascii: bool = False, indent: int | None = None, separators: Any = None,
            sort_keys: bool = False) -> str:
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _raise(message: str) -> None:
    import jinja2

    raise jinja2.exceptions.TemplateError(message)


class _TemplateDict:
    """dict(...) and dict.fromkeys(...) without the dict type's other attributes."""

    def __call__(self, *args: Any, **kwargs: Any) -> dict[Any, Any]:
        return dict(*args, **kwargs)

    def fromkeys(self, *args: Any, **kwargs: Any) -> dict[Any, Any]:
        return dict.fromkeys(*args, **kwargs)


def _namespace_class(jinja2: Any) -> type:
    """jinja2's Namespace refusing underscore-prefixed names (as transformers' TemplateNamespace)."""

    def check(name: Any) -> None:
        if isinstance(name, str) and name.startswith("_"):
            raise jinja2.exceptions.SecurityError(f"chat templates cannot store underscore-prefixed "
                                                  f"attributes on a namespace, got {name!r}")

    class TemplateNamespace(jinja2.utils.Namespace):
        def __init__(*args: Any, **kwargs: Any) -> None:  # Jinja's signature trick: namespace(self=...)
            self, rest = args[0], args[1:]
            attrs = dict(*rest, **kwargs)
            for name in attrs:
                check(name)
            jinja2.utils.Namespace.__init__(self, attrs)

        def __setitem__(self, name: str, value: Any) -> None:
            check(name)
            jinja2.utils.Namespace.__setitem__(self, name, value)

    return TemplateNamespace


# ---- the tokenizer side ----

def token_text(tok: Any, token_id: int | None) -> str | None:
    """The string of a token id (an added/special token's content), or None."""
    if token_id is None:
        return None
    inv = getattr(tok, "inv", None)  # runtime/bpe.py's ByteLevelBPE
    if isinstance(inv, dict):
        return inv.get(int(token_id))
    inner = getattr(tok, "_tok", tok)  # models/loaders/tokenizer.py's wrapper over `tokenizers`
    fn = getattr(inner, "id_to_token", None)
    return fn(int(token_id)) if fn is not None else None


def token_id(tok: Any, text: str) -> int | None:
    """The id of a token string, or None."""
    fn = getattr(tok, "token_to_id", None) or getattr(getattr(tok, "_tok", None), "token_to_id", None)
    i = fn(text) if fn is not None else None
    return int(i) if i is not None else None


def template_for(source: str | None, codec: Any) -> ChatTemplate | PlainText:
    """The model's template with its BOS/EOS token strings, or PlainText when it has none."""
    if source is None or not source.strip():
        return PlainText()
    tok = codec.tok
    specials = {"bos_token": token_text(tok, codec.bos_id), "eos_token": token_text(tok, codec.eos_id)}
    return ChatTemplate(source, specials)


def end_of_turn_ids(renderer: ChatTemplate | PlainText, codec: Any) -> tuple[int, ...]:
    """Ids that end a reply besides EOS: the END_OF_TURN tokens the template names."""
    if not isinstance(renderer, ChatTemplate):
        return ()
    ids = [token_id(codec.tok, t) for t in END_OF_TURN if t in renderer.source]
    return tuple(sorted({i for i in ids if i is not None and i != codec.eos_id}))


def encode_rendered(codec: Any, text: str, adds_bos: bool) -> list[int]:
    """Token ids of rendered text: special tokens in it become their ids; BOS in front when adds_bos."""
    check_utf8(text, "the conversation")
    if adds_bos:
        return list(codec.prompt_ids(text))  # exactly as `generate` / `run` tokenize a prompt
    r = codec.tok.encode(text)
    return [int(t) for t in getattr(r, "ids", r)]
