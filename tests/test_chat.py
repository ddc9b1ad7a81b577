"""Chat templates rendered as transformers renders them; `edgellm chat` keeps the KV cache between turns.

The template strings below are the public chat templates of the models named (as their tokenizer
configs ship them; Falcon3's tool branch shortened), written here as data. Each is rendered by
runtime/chat_template.py and by transformers' apply_chat_template on the same tokenizer, text and ids.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from shared_chat import QWEN2, SPECIALS, hf_tokenizer, write_chatml_checkpoint, write_tokenizer
from typer.testing import CliRunner

from edgellm.cli import app
from edgellm.errors import EdgeLLMError

pytest.importorskip("jinja2")
runner = CliRunner()

LLAMA3 = ("{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
          "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + "
          "'<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
          "{{ content }}{% endfor %}{% if add_generation_prompt %}"
          "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")
BITNET_2B_4T = ("{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
                "message['role'] | capitalize + ': '+ message['content'] | trim + '<|eot_id|>' %}"
                "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}"
                "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant: ' }}{% endif %}")
FALCON3 = """{%- if tools %}
{{- '<|system|>\\n' }}
{%- if messages[0]['role'] == 'system' %}
{{- messages[0]['content'] }}
{%- set remaining_messages = messages[1:] %}
{%- else %}
{%- set remaining_messages = messages %}
{%- endif %}
{{- 'You are a Falcon assistant skilled in function calling.\\n\\n<tools>' + tools|tojson(indent=2) }}
{%- else %}
{%- set remaining_messages = messages %}
{%- endif %}
{%- for message in remaining_messages %}
{%- if message['role'] == 'system' %}
{{- '<|system|>\\n' + message['content'] + '\\n' }}
{%- elif message['role'] == 'user' %}
{{- '<|user|>\\n' + message['content'] + '\\n' }}
{%- elif message['role'] == 'assistant' %}
{%- if not loop.last %}
{{- '<|assistant|>\\n' + message['content'] + eos_token + '\\n' }}
{%- else %}
{{- '<|assistant|>\\n' + message['content'] + eos_token }}
{%- endif %}
{%- endif %}
{%- if loop.last and add_generation_prompt %}
{{- '<|assistant|>\\n' }}
{%- endif %}
{%- endfor %}"""
# The Jinja features templates use beyond those: namespace, loop controls, tojson, dict, strftime_now,
# the {% generation %} tag, raise_exception, and lstrip/trim of block lines.
FEATURES = """{%- set ns = namespace(users=0) -%}
{%- set year = strftime_now('%Y') -%}
{%- for m in messages %}
    {%- if m['role'] == 'user' %}{% set ns.users = ns.users + 1 %}{% endif %}
    {%- if m['role'] == 'tool' %}{{ raise_exception('no tools') }}{% endif %}
    {%- if m['content'] == 'skip me' %}{% continue %}{% endif %}
    <{{ m['role'] }}>{{ m['content'] | tojson }}{{ dict(n=loop.index) | tojson }}
    {%- if m['role'] == 'assistant' %}{% generation %}[done]{% endgeneration %}{% endif %}
{% endfor %}
{%- if add_generation_prompt %}<assistant users={{ ns.users }} y={{ year | length }}>{% endif %}"""

TEMPLATES = {"llama3": (LLAMA3, "<|begin_of_text|>", "<|eot_id|>"),
             "qwen2": (QWEN2, None, "<|im_end|>"),
             "bitnet-2b-4t": (BITNET_2B_4T, "<|begin_of_text|>", "<|eot_id|>"),
             "falcon3": (FALCON3, None, "<|endoftext|>"),
             "features": (FEATURES, "<|begin_of_text|>", "<|eot_id|>")}
CONVERSATIONS = [
    [{"role": "user", "content": "Hello"}],
    [{"role": "system", "content": "You are a helpful assistant"}, {"role": "user", "content": "Hello"},
     {"role": "assistant", "content": "   Hi there  "}, {"role": "user", "content": "Who are you?"}],
    [{"role": "user", "content": "skip me"}, {"role": "assistant", "content": "Ünïcødé ✓ \"quoted\""},
     {"role": "user", "content": "a <|eot_id|> inside, then\nnew lines\n"}],
]


@pytest.fixture(scope="module")
def tok_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tokenizer(tmp_path_factory.mktemp("tok") / "tokenizer.json")


def _codec(tok_file: Path, bos: str | None, eos: str) -> Any:
    from edgellm.commands.generate import TextCodec
    from edgellm.runtime.bpe import load_tokenizer

    ids = {t: i for i, t in enumerate(SPECIALS)}  # the trainer gives the special tokens ids 0, 1, ...
    bos_id = ids[bos] if bos else None
    return TextCodec(load_tokenizer(tok_file, bos_id, ids[eos]), bos_id, ids[eos])


@pytest.mark.parametrize("name", list(TEMPLATES))
def test_templates_render_as_transformers(tok_file: Path, name: str) -> None:
    from edgellm.runtime.chat_template import ChatTemplate, encode_rendered, template_for

    source, bos, eos = TEMPLATES[name]
    codec, hf = _codec(tok_file, bos, eos), hf_tokenizer(tok_file, bos, eos)
    tmpl = template_for(source, codec)
    assert isinstance(tmpl, ChatTemplate) and not tmpl.adds_bos
    for conv in CONVERSATIONS:
        for gen in (True, False):
            want = hf.apply_chat_template(conv, chat_template=source, tokenize=False,
                                          add_generation_prompt=gen)
            got = tmpl.render(conv, gen)
            assert got == want, (name, conv, gen)
            want_ids = hf.apply_chat_template(conv, chat_template=source, tokenize=True,
                                              add_generation_prompt=gen, return_dict=False)
            assert encode_rendered(codec, got, tmpl.adds_bos) == list(want_ids), (name, conv, gen)


def test_template_errors_are_one_line(tok_file: Path) -> None:
    from edgellm.runtime.chat_template import ChatTemplate, ChatTemplateError

    gemma = ("{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
             "{% endif %}{% for m in messages %}{{ m['content'] }}{% endfor %}")
    with pytest.raises(ChatTemplateError, match="chat template: System role not supported"):
        ChatTemplate(gemma).render([{"role": "system", "content": "x"}])
    with pytest.raises(ChatTemplateError, match="does not compile \\(line 1"):
        ChatTemplate("{% for m in messages %}{{ m }")
    with pytest.raises(ChatTemplateError, match="chat template"):  # the sandbox refuses internals
        ChatTemplate("{{ messages.__class__.__mro__ }}").render([])
    with pytest.raises(ChatTemplateError, match="underscore"):
        ChatTemplate("{% set ns = namespace() %}{% set ns._x = 1 %}").render([])
    with pytest.raises(ChatTemplateError, match="empty"):
        ChatTemplate("  ")
    for e in (ChatTemplateError("a"),):
        assert isinstance(e, EdgeLLMError)


# ---- conversations: the KV cache kept between turns ----

class Spy:
    """A backend wrapper counting what is fed: the tokens of each forward and each reset."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.config = inner, inner.config
        self.fed: list[int] = []
        self.resets = 0

    @property
    def length(self) -> int:
        return int(self.inner.length)

    def reset(self) -> None:
        self.resets += 1
        self.inner.reset()

    def forward(self, tokens: np.ndarray, all_logits: bool = False) -> np.ndarray:
        self.fed.append(int(np.asarray(tokens).size))
        return self.inner.forward(tokens, all_logits)


@pytest.fixture(scope="module")
def chat_ckpt(tok_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_chatml_checkpoint(tmp_path_factory.mktemp("ck") / "chatml", tok_file)


def _conversation(ckpt: Path, n: int, system: str | None = None) -> Any:
    from edgellm.runtime.conversation import Conversation
    from edgellm.runtime.sampling import SamplingParams
    from edgellm.serve.target import open_target

    t = open_target(ckpt)
    spy = Spy(t.engine)
    return t, spy, Conversation(spy, t.codec, t.template, SamplingParams(max_new_tokens=n), system)


def test_second_turn_prefills_only_its_new_tokens(chat_ckpt: Path, tok_file: Path) -> None:
    hf = hf_tokenizer(tok_file, None, "<|im_end|>")
    t, spy, conv = _conversation(chat_ckpt, 5, system="Be brief.")
    sys_msg = {"role": "system", "content": "Be brief."}
    u1, u2 = {"role": "user", "content": "Hello there"}, {"role": "user", "content": "Who are you?"}
    first = conv.say(u1["content"])
    want1 = hf.apply_chat_template([sys_msg, u1], chat_template=QWEN2, add_generation_prompt=True,
                                   return_dict=False)
    assert first.prefilled == len(want1) == spy.fed[0]
    n1, resets = len(conv.ids), spy.resets
    assert spy.length == n1 == len(want1) + len(first.result.tokens) - 1
    second = conv.say(u2["content"])
    assert spy.resets == resets and not second.rebuilt  # the cache was kept ...
    assert spy.fed[len(first.result.tokens)] == second.prefilled  # ... and only the new turn prefilled
    full = hf.apply_chat_template([sys_msg, u1, {"role": "assistant", "content": first.text}, u2],
                                  chat_template=QWEN2, add_generation_prompt=True, tokenize=False)
    r1 = first.result
    assert not set(r1.text_tokens) & set(range(len(SPECIALS)))  # the reply decodes to what it holds
    # what the cache holds after turn 2's prefill is the conversation as transformers renders it
    held = conv.ids[:n1 + second.prefilled]
    assert hf.decode(held, skip_special_tokens=False) == full
    assert second.prefilled < len(hf(full, add_special_tokens=False)["input_ids"]) // 2
    assert spy.length == len(conv.ids) == n1 + second.prefilled + len(second.result.tokens) - 1


def test_template_that_rewrites_turns_rebuilds_the_cache(chat_ckpt: Path) -> None:
    from edgellm.runtime.chat_template import ChatTemplate

    t, spy, conv = _conversation(chat_ckpt, 3)
    conv.renderer = ChatTemplate("{% for m in messages %}{% if m['role'] == 'assistant' and not loop.last %}"
                                 "<|im_start|>(earlier reply)<|im_end|>{% else %}<|im_start|>"
                                 "{{ m['content'] }}<|im_end|>{% endif %}{% endfor %}<|im_start|>")
    conv.say("Hello")
    second = conv.say("again")
    assert second.rebuilt and spy.resets == 3  # Conversation(), turn 1, turn 2
    assert second.prefilled == spy.fed[-len(second.result.tokens)] and spy.length == len(conv.ids)


def test_over_context_turn_changes_nothing(chat_ckpt: Path) -> None:
    t, spy, conv = _conversation(chat_ckpt, 3)
    conv.say("Hello")
    ids, fed = list(conv.ids), list(spy.fed)
    with pytest.raises(EdgeLLMError, match="free positions of the context; .* in use \\(/reset\\)"):
        conv.say("Hello there, who are you? " * 20)
    assert conv.ids == ids and spy.fed == fed and spy.length == len(ids)
    assert conv.say("who?").prefilled < 20


def test_generate_with_past_keeps_the_cache(chat_ckpt: Path) -> None:
    """generate(past=...) appends after the cached ids instead of resetting (a regression for the old
    generate(), which always reset and re-prefilled)."""
    from edgellm.runtime.generation import generate
    from edgellm.runtime.sampling import SamplingParams
    from edgellm.serve.target import open_target

    spy = Spy(open_target(chat_ckpt).engine)
    p = SamplingParams(max_new_tokens=3, stop_at_eos=False)
    a = generate(spy, [0, 20, 30], p)
    past = [0, 20, 30, *a.tokens[:-1]]
    b = generate(spy, [a.tokens[-1], 40], p, past=past)
    assert spy.resets == 1 and spy.fed == [3, 1, 1, 2, 1, 1] and spy.length == len(past) + 2 + 2
    whole = generate(spy, [*past, a.tokens[-1], 40], p)  # the same tokens from scratch
    assert whole.tokens == b.tokens


# ---- the command ----

def test_chat_command_with_a_template(chat_ckpt: Path) -> None:
    res = runner.invoke(app, ["chat", str(chat_ckpt), "-n", "4", "--system", "Be brief."],
                        input="Hello there\nWho are you?\n")
    assert res.exit_code == 0, res.output
    assert "the model's chat template" in res.stderr and "no chat template" not in res.stderr
    stats = [ln for ln in res.stderr.splitlines() if ln.startswith("[golden] turn")]
    assert len(stats) == 2 and "turn 2: prefilled" in stats[1] and "rebuilt" not in stats[1]
    _, _, conv = _conversation(chat_ckpt, 4, system="Be brief.")
    first, second = conv.say("Hello there"), conv.say("Who are you?")
    assert res.stdout == f"{first.text}\n{second.text}\n"
    assert f"turn 2: prefilled {second.prefilled} new tokens" in stats[1]


def test_chat_command_on_the_tiny_model() -> None:
    """No template: plain continuation with a note; /reset, a bad UTF-8 line and an over-context turn get
    one line each and the conversation goes on."""
    long_line = b"Emma " * 600
    lines = [b"Emma was", b"and then", b"caf\xe9 \xff", long_line, b"/nope", b"/reset", b"Mr. Knightley",
             b"/exit", b"never read"]
    res = runner.invoke(app, ["chat", "-n", "4"], input=b"\n".join(lines) + b"\n")
    assert res.exit_code == 0, res.output
    err = res.stderr.splitlines()
    assert any("has no chat template (it is not an instruct model)" in ln for ln in err)
    turns = [ln.split(":")[0] for ln in err if ln.startswith("[golden]")]
    assert turns == ["[golden] turn 1", "[golden] turn 2", "[golden] turn 1"]
    turn2 = next(ln for ln in err if "turn 2" in ln)
    assert "prefilled 4 new tokens" in turn2  # the reply's last token + "\nand then"
    errors = [ln for ln in err if ln.startswith("error:")]
    assert len(errors) == 3 and "not valid UTF-8" in errors[0] and "free positions" in errors[1]
    assert "unknown command /nope" in errors[2] and "conversation reset" in res.stderr
    assert len(res.stdout.splitlines()) == 3 and "Traceback" not in res.output


def test_chat_command_bad_input() -> None:
    res = runner.invoke(app, ["chat", "--system", "  "], input="")
    assert res.exit_code == 2 and res.output.startswith("error: --system is empty")
    res = runner.invoke(app, ["chat", "/nonexistent/model"], input="hi\n")
    assert res.exit_code == 2 and res.output.count("\n") == 1 and "does not exist" in res.output
    res = runner.invoke(app, ["chat", "--device", "emu"], input="hi\n")
    assert res.exit_code == 2 and "--device applies to a compiled project" in res.output
    res = runner.invoke(app, ["chat", "--backend", "tpu"], input="hi\n")
    assert res.exit_code == 2 and "unknown backend 'tpu'" in res.output
