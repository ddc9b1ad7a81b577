"""Refusals that come early and say the right thing (hardening sweep H5): compile's DDR fit of a ternary model
checked on its config before its weights are loaded or generated (compiler/early_fit.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgellm import cli
from edgellm.compiler.early_fit import ternary_config
from edgellm.models.config import PRESETS, ModelConfig
from edgellm.models.loaders import load_model
from edgellm.models.loaders.hf_bitnet import hf_config_dict, save_hf_bitnet
from edgellm.models.random_model import random_model
from edgellm.models.shipped import tiny_model_dir

runner = CliRunner()
SMALL = ModelConfig(name="small", hidden_size=256, n_layers=2, n_heads=4, n_kv_heads=4, ffn_size=688,
                    vocab_size=1024, max_context=256)
DDR_REFUSAL = "needs 1568 MiB of DDR (weights 617 MiB, lm_head 98 MiB, embeddings 195 MiB, kv_cache 650 MiB, "


def _no_weights(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make loading or generating any model's weights fail the test; returns the calls made."""
    calls: list[str] = []

    def fail(*a, **k):
        calls.append(str(a[:1]))
        raise AssertionError("weights loaded or generated before the DDR fit check")

    import edgellm.commands.model_names as mn
    import edgellm.models.loaders as loaders

    monkeypatch.setattr(loaders, "load_model", fail)
    monkeypatch.setattr(mn, "preset_model", fail)
    monkeypatch.setattr(loaders, "save_hf_bitnet", fail)
    return calls


def test_compile_preset_too_large_refused_before_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGELLM_CACHE", str(tmp_path / "cache"))  # no cached checkpoint: generated if not
    calls = _no_weights(monkeypatch)
    r = runner.invoke(cli.app, ["compile", "--preset", "bitnet_b1_58-3B", "-b", "pynq_z2",
                                "-o", str(tmp_path / "out")])
    assert r.exit_code != 0 and calls == [], r.output
    assert f"error: bitnet_b1_58-3B-seed0 {DDR_REFUSAL}" in r.output
    assert "pynq_z2 (512 MiB DDR) leaves 256 MiB" in r.output
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()


def test_compile_checkpoint_too_large_refused_before_weights(tmp_path, monkeypatch):
    """A checkpoint directory (config.json only here: the weights are never read) of the 3B's shapes."""
    d = tmp_path / "bitnet_b1_58-3B-seed0"
    d.mkdir()
    (d / "config.json").write_text(json.dumps(hf_config_dict(PRESETS["bitnet_b1_58-3B"])))
    calls = _no_weights(monkeypatch)
    r = runner.invoke(cli.app, ["compile", str(d), "-b", "pynq_z2", "-o", str(tmp_path / "out")])
    assert r.exit_code != 0 and calls == [], r.output
    assert f"error: bitnet_b1_58-3B-seed0 {DDR_REFUSAL}" in r.output


def test_ternary_config_is_the_loaders(tmp_path):
    """The early check's config is the loaded model's (so its message is the DSE's, word for word)."""
    assert ternary_config(tiny_model_dir()) == load_model(tiny_model_dir())[0].config
    for subln in (True, False):
        cfg = ModelConfig(name="m", hidden_size=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_size=160,
                          vocab_size=97, max_context=64, subln=subln)
        d = Path(save_hf_bitnet(random_model(cfg, seed=1), tmp_path / f"ck{subln}"))
        assert ternary_config(d) == load_model(d)[0].config
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from shared_gguf import write_gguf

    g = tmp_path / "m.gguf"  # a BitNet GGUF (TQ2_0)
    gcfg = ModelConfig(name="g", hidden_size=256, n_layers=1, n_heads=4, n_kv_heads=2, ffn_size=512,
                       vocab_size=97, max_context=64)
    write_gguf(random_model(gcfg, seed=2), g)
    assert ternary_config(g) == load_model(g)[0].config


def test_estimate_reads_no_weights(tmp_path, monkeypatch):
    """estimate projects a checkpoint from its config alone: no weights loaded."""
    d = tmp_path / "big"
    d.mkdir()
    (d / "config.json").write_text(json.dumps(hf_config_dict(SMALL)))
    calls = _no_weights(monkeypatch)
    for args in ([str(d)],):
        r = runner.invoke(cli.app, ["estimate", *args, "-b", "zcu104", "--json"])
        assert r.exit_code == 0 and calls == [], r.output


@pytest.mark.parametrize("arg", ["bad/x.gguf", "bad/model.safetensors", "nothere/x.GGUF", "here/dir"])
def test_missing_path_not_taken_for_hub_id(arg, tmp_path, monkeypatch):
    """An owner/name-shaped argument with a file suffix, or whose first part exists here, is a missing
    path (one line saying so), not a hub id looked up in the Hugging Face cache."""
    import edgellm.commands.model_names as mn

    monkeypatch.chdir(tmp_path)
    (tmp_path / "here").mkdir()
    looked_up: list[str] = []
    monkeypatch.setattr(mn, "hub_snapshot", lambda repo, patterns=None: looked_up.append(repo))
    for cmd in (["generate", arg, "--prompt", "hi"], ["compile", arg], ["estimate", arg]):
        r = runner.invoke(cli.app, cmd)
        assert r.exit_code != 0 and looked_up == [], r.output
        assert r.output.strip() == f"error: model path {arg} does not exist", r.output
    assert mn.resolve_model_arg(Path("owner/name")) is None and looked_up == ["owner/name"]  # a hub id still


def test_estimate_dir_neither_project_nor_checkpoint(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"\0")
    for extra in ([], ["--check"]):
        r = runner.invoke(cli.app, ["estimate", str(tmp_path), *extra])
        assert r.exit_code == 2, r.output
        assert r.output.strip() == (f"error: {tmp_path} is neither a compiled project (no manifest.json) "
                                    "nor a checkpoint (no config.json)"), r.output


def test_deep_json_refused_through_jsonfile(tmp_path):
    """The five readers that caught RecursionError themselves now parse through runtime/jsonfile.py: a
    deeply nested file is refused as before, naming the nesting (the old text was Python's 'maximum
    recursion depth exceeded')."""
    from edgellm.compiler.calibrate.measured import _load
    from edgellm.errors import EdgeLLMError
    from edgellm.report.gather import read_json
    from edgellm.runtime.probe_kit import is_kit, read_kit_manifest
    from edgellm.runtime.project import read_manifest
    from edgellm.serve.schemas import ApiError, parse_json

    deep = "[" * 100_000 + "]" * 100_000
    (tmp_path / "manifest.json").write_text(deep)
    (tmp_path / "deep.json").write_text(deep)
    for read in (read_manifest, read_kit_manifest, _load, lambda p: read_json(p / "deep.json", "report")):
        with pytest.raises(EdgeLLMError, match="not valid JSON \\(JSON nested too deeply"):
            read(tmp_path if read is not _load else tmp_path / "deep.json")
    assert not is_kit(tmp_path)
    with pytest.raises(ApiError) as e:
        parse_json(deep.encode())
    assert e.value.status == 400, e.value.message
    assert "not valid JSON (JSON nested too deeply" in e.value.message, e.value.message


def _lowbit_plan_bytes(path: Path, board: str) -> tuple[str, int]:
    """(name, accelerator buffer + host embeddings) of compile's memory plan for a low-bit checkpoint."""
    import tempfile

    from edgellm.compiler import steps
    from edgellm.compiler.pipeline import BuildConfig, BuildContext

    ctx = BuildContext.__new__(BuildContext)
    ctx.config = BuildConfig(model=str(path), board=board, out_dir=tempfile.mkdtemp(), force=True)
    ctx.state = {}
    for s in steps.compile_steps()[:5]:  # load .. plan_memory
        s.fn(ctx)
    c = ctx.state["qm"].config
    return c.name, ctx.state["plan"].total_bytes + c.vocab_size * c.hidden_size * 2


def test_lowbit_floor_is_below_the_plan(tmp_path):
    """The early low-bit refusal's lower bound never exceeds what the memory plan needs (GGUF, GPTQ)."""
    import sys

    from edgellm.compiler.early_fit import lowbit_floor

    sys.path.insert(0, str(Path(__file__).parent))
    from shared_lowbit_models import tiny_checkpoints

    for path in tiny_checkpoints(tmp_path).values():
        name, parts = lowbit_floor(path)
        plan_name, plan_bytes = _lowbit_plan_bytes(path, "kv260")
        assert name == plan_name and 0.5 * plan_bytes < sum(parts.values()) <= plan_bytes, (parts, plan_bytes)


def test_compile_lowbit_too_large_refused_before_weights(tmp_path, monkeypatch):
    """A GPTQ directory whose config has a 1B llama's shapes (its small tensors are never read)."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from shared_lowbit_models import tiny_checkpoints

    d = tiny_checkpoints(tmp_path)["qwen2-gptq"]
    raw = json.loads((d / "config.json").read_text())
    big = PRESETS["llama-3.2-1b"]
    raw.update(hidden_size=big.hidden_size, intermediate_size=big.ffn_size, num_hidden_layers=big.n_layers,
               num_attention_heads=big.n_heads, num_key_value_heads=big.n_kv_heads, vocab_size=big.vocab_size)
    (d / "config.json").write_text(json.dumps(raw))
    calls = _no_weights(monkeypatch)
    r = runner.invoke(cli.app, ["compile", str(d), "-b", "pynq_z2", "-o", str(tmp_path / "out")])
    assert r.exit_code != 0 and calls == [], r.output
    assert r.output.startswith("error: gptq needs at least "), r.output
    assert "MiB of DDR (low-bit weights " in r.output and "pynq_z2 leaves 256 MiB for the model" in r.output
