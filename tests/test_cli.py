"""The edgellm CLI: app/registry, `generate`, `eval` and their one-line errors."""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

import edgellm
import edgellm.commands
from edgellm import cli
from edgellm.commands import eval as eval_cmd
from edgellm.commands import generate as gen
from edgellm.models.backend import GoldenBackend
from edgellm.models.config import ModelConfig
from edgellm.models.random_model import random_model
from edgellm.runtime.generation import generate
from edgellm.runtime.metrics import evaluate
from edgellm.runtime.sampling import SamplingParams

SENTENCES = ["the quick brown fox jumps over the lazy dog", "edge FPGAs run ternary language models",
             "héllo wörld, ünïcode ✓ tokens", "prefill then decode, one token at a time"]
runner = CliRunner()


@pytest.fixture(scope="module")
def hf_tok():
    """A tiny byte-level BPE tokenizer with <unk>=0, <s>=1, </s>=2."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=["<unk>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(SENTENCES * 5, trainer)
    assert (tok.token_to_id("<s>"), tok.token_to_id("</s>")) == (1, 2)
    return tok


@pytest.fixture(scope="module")
def qm(hf_tok):
    cfg = ModelConfig(hidden_size=32, n_layers=2, n_heads=4, n_kv_heads=2, ffn_size=64,
                      vocab_size=hf_tok.get_vocab_size(), max_context=64, bos_id=1, eos_id=2, name="t")
    return random_model(cfg, seed=5)


@pytest.fixture(scope="module")
def hf_dir(qm, hf_tok, tmp_path_factory):
    """The model written as a Hugging Face BitNet checkpoint."""
    from edgellm.models.loaders import save_hf_bitnet

    d = tmp_path_factory.mktemp("ckpt") / "tiny-hf"
    save_hf_bitnet(qm, d, tokenizer_json=hf_tok.to_str())
    return d


@pytest.fixture
def model_path(hf_dir):
    """A MODEL argument: the real HF checkpoint."""
    return str(hf_dir)


def expected_tokens(qm, hf_tok, prompt: str, **kw) -> list[int]:
    ids = [1, *hf_tok.encode(prompt).ids]
    return generate(GoldenBackend(qm), ids, SamplingParams(eos_id=2, **kw)).text_tokens


def assert_one_line_error(result, code: int = 2, match: str = "") -> str:
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert match in lines[0], lines[0]
    return lines[0]


# ---------------------------------------------------------------- app, registry, entry points

def test_help_and_version():
    r = runner.invoke(cli.app, ["--help"])
    assert r.exit_code == 0 and "generate" in r.output and "eval" in r.output
    assert r.output.index("generate") < r.output.index("eval")
    first = " ".join(r.output.split("Options:")[0].split())  # the description, unwrapped
    assert "Compile ternary (BitNet b1.58) and low-bit (2-8-bit group-quantized GGUF / GPTQ Llama and " \
        "Qwen2) LLMs into FPGA accelerators" in first
    r = runner.invoke(cli.app, ["--version"])
    assert r.exit_code == 0 and r.output.strip() == f"edgellm {edgellm.__version__}"
    for argv in ([sys.executable, "-m", "edgellm.cli"], [shutil.which("edgellm") or "edgellm"]):
        p = subprocess.run([*argv, "--version"], capture_output=True, text=True, timeout=60)
        assert p.returncode == 0 and p.stdout.strip() == f"edgellm {edgellm.__version__}", p.stderr


def test_help_does_not_import_heavy_modules():
    code = ("import sys\nfrom edgellm import cli\nsys.argv = ['edgellm', '--help']\n"
            "try:\n    cli.main()\nexcept SystemExit as e:\n    assert e.code in (0, None)\n"
            "heavy = [m for m in ('torch', 'onnxruntime', 'onnx', 'transformers') if m in sys.modules]\n"
            "print('HEAVY=' + ','.join(heavy))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().splitlines()[-1] == "HEAVY="


def test_registry_refuses_missing_or_broken_command_modules(tmp_path, monkeypatch):
    pkg = tmp_path / "cmds"
    pkg.mkdir()
    (pkg / "zz_ok.py").write_text("def register(app):\n    app.command('zz-ok')(lambda: print('ran'))\n")
    (pkg / "zz_broken.py").write_text("import zz_no_such_module_anywhere\n")
    (pkg / "zz_noreg.py").write_text("X = 1\n")
    monkeypatch.setattr(edgellm.commands, "__path__", [*edgellm.commands.__path__, str(pkg)])
    for m in ("edgellm.commands.zz_ok", "edgellm.commands.zz_broken", "edgellm.commands.zz_noreg"):
        monkeypatch.delitem(sys.modules, m, raising=False)
    app = typer.Typer()
    app.callback()(lambda: None)
    assert cli.register_commands(app, ["zz_ok"]) == ["zz_ok"]
    assert runner.invoke(app, ["zz-ok"]).output.strip() == "ran"
    # a listed module that is absent is an error naming it, not a silently missing command
    with pytest.raises(cli.CommandModuleError, match="edgellm.commands.zz_missing is missing"):
        cli.register_commands(typer.Typer(), ["zz_ok", "zz_missing"])
    with pytest.raises(cli.CommandModuleError, match="zz_noreg defines no register"):
        cli.register_commands(typer.Typer(), ["zz_noreg"])
    with pytest.raises(ModuleNotFoundError, match="zz_no_such_module_anywhere"):
        cli.register_commands(typer.Typer(), ["zz_ok", "zz_broken"])
    assert cli.REGISTERED == cli.COMMANDS


@pytest.mark.parametrize("args,match", [
    (["generate", "-n", "abc"], "Invalid value for '--max-new-tokens'"),
    (["bogus"], "No such command 'bogus'"),
    (["generate", "--bogus"], "No such option: --bogus"),
])
def test_usage_errors_are_one_line(args, match):
    assert_one_line_error(runner.invoke(cli.app, args), match=match)


def test_no_arguments_prints_help():
    r = runner.invoke(cli.app, [])
    assert r.exit_code == 2 and "Usage" in r.output and "generate" in r.output


def test_main_turns_errors_into_one_line_and_exit_codes(monkeypatch, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["generate", "/no/such/model", "--prompt", "hi"])
    assert e.value.code == 2
    assert capsys.readouterr().err.strip() == "error: model path /no/such/model does not exist"
    def interrupt(model):
        raise KeyboardInterrupt
    monkeypatch.setattr(gen, "load_checkpoint", interrupt)
    with pytest.raises(SystemExit) as e:
        cli.main(["generate", "--prompt", "hi"])
    assert e.value.code == 130


def test_script_errors_have_no_traceback(tmp_path):
    exe = shutil.which("edgellm") or "edgellm"
    cases = [(["generate", str(tmp_path / "missing"), "--prompt", "x"], "does not exist"),
             (["generate", "--prompt", ""], "empty prompt"),
             (["generate", "-n", "abc"], "Invalid value for '--max-new-tokens'"),
             (["eval", str(tmp_path), "--text", str(tmp_path / "none.txt")], "does not exist")]
    for args, match in cases:
        p = subprocess.run([exe, *args], capture_output=True, text=True, timeout=60)
        assert p.returncode == 2, (args, p.stderr)
        assert "Traceback" not in p.stderr + p.stdout
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and match in lines[0], p.stderr


# ---------------------------------------------------------------- generate

def test_generate_greedy_streams_the_golden_tokens(model_path, qm, hf_tok):
    want = hf_tok.decode(expected_tokens(qm, hf_tok, "the quick brown", max_new_tokens=12))
    r = runner.invoke(cli.app, ["generate", model_path, "--prompt", "the quick brown", "-n", "12"])
    assert r.exit_code == 0, r.output
    assert r.stdout == want + "\n"
    assert "[golden]" in r.stderr and "TTFT" in r.stderr and "tok/s" in r.stderr
    r2 = runner.invoke(cli.app, ["generate", model_path, "-p", "the quick brown", "-n", "12", "--no-stream"])
    assert r2.exit_code == 0 and r2.stdout == r.stdout


def test_generate_seeded_sampling_is_reproducible(model_path, qm, hf_tok):
    args = ["generate", model_path, "-p", "edge FPGAs", "-n", "20", "--temperature", "3",
            "--top-k", "40", "--top-p", "0.95", "--ignore-eos"]
    a = runner.invoke(cli.app, [*args, "--seed", "5"])
    b = runner.invoke(cli.app, [*args, "--seed", "5"])
    c = runner.invoke(cli.app, [*args, "--seed", "6"])
    assert a.exit_code == b.exit_code == c.exit_code == 0, a.output
    assert a.stdout == b.stdout != c.stdout
    want = expected_tokens(qm, hf_tok, "edge FPGAs", max_new_tokens=20, temperature=3.0, top_k=40,
                           top_p=0.95, seed=5, stop_at_eos=False)
    assert a.stdout == hf_tok.decode(want) + "\n"


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_generate_other_backends_give_the_golden_greedy_text(backend, model_path, qm, hf_tok):
    if backend == "onnx":
        pytest.importorskip("edgellm.models.ort_runner")
    want = hf_tok.decode(expected_tokens(qm, hf_tok, "one token at", max_new_tokens=10))
    r = runner.invoke(cli.app, ["generate", model_path, "-p", "one token at", "-n", "10", "-b", backend])
    assert r.exit_code == 0, r.output
    assert r.stdout == want + "\n" and f"[{backend}]" in r.stderr


def test_real_checkpoint_round_trip(hf_dir, qm, hf_tok):
    from edgellm.models.loaders import load_model

    qm2, tok2 = load_model(hf_dir)
    assert tok2 is not None and tok2.encode("the quick") == hf_tok.encode("the quick").ids
    ids = np.array([1, 5, 9, 33])
    np.testing.assert_array_equal(GoldenBackend(qm2).forward(ids, all_logits=True),
                                  GoldenBackend(qm).forward(ids, all_logits=True))


def test_stream_printer_holds_back_partial_utf8(hf_tok):
    from tokenizers.pre_tokenizers import ByteLevel

    codec = gen.TextCodec(hf_tok, 1, 2)
    # ids of the single-byte tokens of "a✓é" (one id per UTF-8 byte)
    mapped = "".join(w for w, _ in ByteLevel(add_prefix_space=False).pre_tokenize_str("a✓é"))
    ids = [hf_tok.token_to_id(ch) for ch in mapped]
    assert None not in ids and len(ids) == 1 + 3 + 2
    out: list[str] = []
    p = gen.StreamPrinter(codec, out.append)
    for t in ids:
        p(t)
    p.flush()
    assert "".join(out) == "a✓é" and all("\ufffd" not in s for s in out)
    assert out == ["a", "✓", "é"]


def test_generate_without_tokenizer_uses_prompt_ids(qm, tmp_path, monkeypatch):
    monkeypatch.setattr(gen, "_loader", lambda: (lambda p: (qm, None)))
    r = runner.invoke(cli.app, ["generate", str(tmp_path), "--prompt-ids", "1,40,41", "-n", "6",
                                "--ignore-eos"])
    assert r.exit_code == 0, r.output
    want = generate(GoldenBackend(qm), [1, 40, 41], SamplingParams(max_new_tokens=6, stop_at_eos=False))
    assert r.stdout.split() == [str(t) for t in want.tokens]
    r = runner.invoke(cli.app, ["generate", str(tmp_path), "--prompt", "hi"])
    assert_one_line_error(r, match="no tokenizer")


def test_default_model_is_the_shipped_tiny_model(tmp_path, monkeypatch):
    import edgellm.models.shipped as shipped

    monkeypatch.setattr(shipped, "tiny_model_dir", lambda: tmp_path / "tiny")
    r = runner.invoke(cli.app, ["generate", "--prompt", "hi"])
    assert_one_line_error(r, match="shipped tiny model is missing")
    tiny = Path(edgellm.models.__file__).parent / "tiny"
    assert (tiny / "config.json").is_file()  # the shipped tiny model is part of the repository
    monkeypatch.undo()
    r = runner.invoke(cli.app, ["generate", "--prompt", "The", "-n", "4"])
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize("args,match", [
    (["--prompt", ""], "empty prompt"),
    (["--prompt", "   "], "empty prompt"),
    (["--prompt-ids", ""], "empty prompt"),
    ([], "no prompt"),
    (["--prompt", "hi", "--backend", "cuda"], "unknown backend 'cuda'"),
    (["--prompt", "hi", "--top-p", "2"], "top_p must be in (0, 1]"),
    (["--prompt", "hi", "--temperature", "-1"], "temperature must be >= 0"),
    (["--prompt-ids", "1,x"], "--prompt-ids"),
    (["--prompt", " ".join(["the quick brown fox"] * 40)], "longer than the model's context of 64"),
])
def test_generate_errors(args, match, model_path):
    assert_one_line_error(runner.invoke(cli.app, ["generate", model_path, *args]), match=match)


def test_generate_missing_model_path(tmp_path):
    r = runner.invoke(cli.app, ["generate", str(tmp_path / "nope"), "--prompt", "hi"])
    assert_one_line_error(r, match=f"model path {tmp_path / 'nope'} does not exist")


# ---------------------------------------------------------------- eval

@pytest.fixture
def text_file(tmp_path):
    p = tmp_path / "corpus.txt"
    p.write_text("\n".join(SENTENCES * 3), encoding="utf-8")
    return p


def test_eval_perplexity_matches_the_metrics(model_path, qm, hf_tok, text_file):
    ids = [1, *hf_tok.encode(text_file.read_text()).ids][:100]
    rep = evaluate([GoldenBackend(qm)], ids, window=40)
    r = runner.invoke(cli.app, ["eval", model_path, "--text", str(text_file), "--max-tokens", "100",
                                "--window", "40"])
    assert r.exit_code == 0, r.output
    assert eval_cmd.fmt_ppl(rep.scores[0].perplexity) in r.stdout and "100 tokens, 3 window(s)" in r.stdout
    assert rep.scores[0].perplexity > 1.0 and rep.scores[0].n_pred == 99  # every token after the first


def test_eval_compare_backends(model_path, text_file):
    names = "golden,torch,onnx" if importlib.util.find_spec("edgellm.models.ort_runner") else "golden,torch"
    r = runner.invoke(cli.app, ["eval", model_path, "--text", str(text_file), "--compare", names,
                                "--max-tokens", "80", "--window", "40"])
    assert r.exit_code == 0, r.output
    for n in names.split(","):
        assert n in r.stdout
    assert "(reference)" in r.stdout and "%" in r.stdout


def test_eval_compare_fails_below_min_agreement(model_path, text_file, monkeypatch):
    class Shuffled:
        """Golden with the vocabulary permuted: argmax almost never agrees."""

        name = "torch"

        def __init__(self, qm):
            self.inner = GoldenBackend(qm)
            self.perm = np.random.default_rng(0).permutation(qm.config.vocab_size)

        def reset(self):
            self.inner.reset()

        def forward(self, tokens, all_logits=False):
            return self.inner.forward(tokens, all_logits)[:, self.perm]

    real = gen.build_backend
    monkeypatch.setattr(eval_cmd, "build_backend",
                        lambda n, qm: Shuffled(qm) if n == "torch" else real(n, qm))
    r = runner.invoke(cli.app, ["eval", model_path, "--text", str(text_file), "--compare", "golden,torch",
                                "--max-tokens", "60", "--window", "30"])
    assert r.exit_code == 1, r.output
    assert "FAIL: top-1 agreement of torch vs golden" in r.stderr and "< 99.00%" in r.stderr
    r = runner.invoke(cli.app, ["eval", model_path, "--text", str(text_file), "--compare", "golden,torch",
                                "--max-tokens", "60", "--window", "30", "--min-agreement", "0"])
    assert r.exit_code == 0, r.output


def test_eval_errors(model_path, text_file, tmp_path):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes(b"caf\xe9 au lait")
    cases = [
        (["--text", str(tmp_path / "none.txt")], "does not exist"),
        (["--text", str(tmp_path)], "is a directory"),
        (["--text", str(bad)], "is not valid UTF-8 text (byte 0xe9 at offset 3)"),
        ([], "no text"),
        (["--text", str(text_file), "--compare", "golden,fpga"], "unknown backend 'fpga'"),
        (["--text", str(text_file), "--backend", "gold"], "unknown backend 'gold'"),
        (["--text", str(text_file), "--compare", "golden,golden"], "twice"),
        (["--text", str(text_file), "--window", "65"], "longer than the model's context of 64"),
        (["--text", str(text_file), "--window", "1"], "--window"),
    ]
    for args, match in cases:
        assert_one_line_error(runner.invoke(cli.app, ["eval", model_path, *args]), match=match)
    short = tmp_path / "short.txt"
    short.write_text("", encoding="utf-8")
    assert_one_line_error(runner.invoke(cli.app, ["eval", model_path, "--text", str(short)]),
                          match="at least 2 are needed")
