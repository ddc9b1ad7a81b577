"""Models by name (issue 20 #5) and the design options compile shares with estimate (#6): hub ids through
a pre-populated Hugging Face cache with the hub unreachable, --preset on generate and compile, the shipped
model recorded by name in a project."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgellm import cli
from edgellm.commands import model_names
from edgellm.models.config import PRESETS, ModelConfig
from edgellm.models.shipped import SHIPPED_TINY, source_name, source_path, tiny_model_dir

EXE = shutil.which("edgellm") or "edgellm"
runner = CliRunner()
COMMIT = "0123456789abcdef0123456789abcdef01234567"
UNREACHABLE = "http://127.0.0.1:9"  # the discard port: connection refused at once
SMALL = ModelConfig(name="small-preset", hidden_size=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_size=128,
                    vocab_size=256, max_context=128, bos_id=1, eos_id=2)


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Hugging Face hub cache holding the shipped tiny model as `edgellm-test/tiny` (refs/main ->
    snapshots/COMMIT), as huggingface_hub lays it out."""
    cache = tmp_path_factory.mktemp("hf") / "hub"
    repo = cache / "models--edgellm-test--tiny"
    snap = repo / "snapshots" / COMMIT
    snap.mkdir(parents=True)
    for f in ("config.json", "model.safetensors", "tokenizer.json"):
        shutil.copy(tiny_model_dir() / f, snap / f)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    return cache


def _edgellm(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})


def _one_error(r, *needles: str) -> str:
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in r.stderr, r.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("offline", ["", "1"], ids=["hub-unreachable", "offline-mode"])
def test_hub_id_from_a_populated_cache_without_the_hub(hub_cache: Path, offline: str) -> None:
    env = {"HF_HUB_CACHE": str(hub_cache), "HF_ENDPOINT": UNREACHABLE, "HF_HUB_OFFLINE": offline,
           "HF_HUB_DISABLE_TELEMETRY": "1"}
    args = ["generate", "-p", "Once upon a time", "-n", "8"]
    by_id = _edgellm(args[0], "edgellm-test/tiny", *args[1:], env=env)
    by_path = _edgellm(args[0], str(tiny_model_dir()), *args[1:], env=env)
    assert by_id.returncode == 0, by_id.stderr
    assert by_id.stdout == by_path.stdout and by_id.stdout.strip()
    est = _edgellm("estimate", "edgellm-test/tiny", "--board", "pynq_z2", "--json", env=env)  # a quick search
    assert est.returncode == 0, est.stderr
    assert json.loads(est.stdout)["model"]["name"] == "edgellm-test/tiny"


def test_a_hub_snapshot_is_named_by_its_hub_id(hub_cache: Path, tmp_path: Path) -> None:
    """The model a snapshot folder holds is named by its hub id (compile's summary and manifest read
    config.name), not by the snapshot's commit hash; any other folder by its own name."""
    from edgellm.models.loaders import load_model
    from edgellm.models.loaders.common import checkpoint_name

    snap = hub_cache / "models--edgellm-test--tiny" / "snapshots" / COMMIT
    assert load_model(snap)[0].config.name == "edgellm-test/tiny"
    assert checkpoint_name(tmp_path / "snapshots" / COMMIT) == COMMIT  # not in a hub cache
    assert checkpoint_name(tiny_model_dir()) == tiny_model_dir().name


def test_hub_id_missing_everywhere_says_what_to_do(tmp_path: Path) -> None:
    env = {"HF_HUB_CACHE": str(tmp_path / "empty"), "HF_ENDPOINT": UNREACHABLE, "HF_HUB_OFFLINE": ""}
    line = _one_error(_edgellm("estimate", "1bitLLM/bitnet_b1_58-large", "--board", "pynq_z2", env=env),
                      "model 1bitLLM/bitnet_b1_58-large: no such local path, not in the Hugging Face cache",
                      "the hub cannot be reached", "hf download 1bitLLM/bitnet_b1_58-large",
                      "--preset bitnet_b1_58-large")
    assert str(tmp_path / "empty") in line
    _one_error(_edgellm("generate", "someone/nothing", "-p", "hi", env={**env, "HF_HUB_OFFLINE": "1"}),
               "HF_HUB_OFFLINE is set", "hf download someone/nothing")
    # a path that merely looks like nothing on disk and is no hub id stays a missing path
    _one_error(_edgellm("generate", "./no/such/dir", "-p", "hi", env=env), "does not exist")
    assert not (tmp_path / "empty").exists() or not any((tmp_path / "empty").rglob("*.safetensors"))


def test_hub_ids_are_told_apart_from_paths() -> None:
    for good in ("1bitLLM/bitnet_b1_58-large", "microsoft/bitnet-b1.58-2B-4T", "a/b"):
        assert model_names.is_hub_id(good), good
    for bad in ("a/b/c", "/abs/x", "./x", "../x/y", "x", "a/..", "a/b.", "-a/b", "a b/c"):
        assert not model_names.is_hub_id(bad), bad
    assert set(model_names.HUB_PRESETS.values()) <= set(PRESETS)


def test_generate_preset_is_the_random_model_of_its_shapes(monkeypatch: pytest.MonkeyPatch) -> None:
    from edgellm.models.backend import GoldenBackend
    from edgellm.models.random_model import random_model
    from edgellm.runtime.generation import generate
    from edgellm.runtime.sampling import SamplingParams

    monkeypatch.setitem(PRESETS, SMALL.name, SMALL)
    r = runner.invoke(cli.app, ["generate", "--preset", SMALL.name, "--prompt-ids", "1,5,9", "-n", "6",
                                "--ignore-eos"])
    assert r.exit_code == 0, r.output
    want = generate(GoldenBackend(random_model(SMALL, seed=model_names.PRESET_SEED)), [1, 5, 9],
                    SamplingParams(max_new_tokens=6, stop_at_eos=False)).text_tokens
    assert r.stdout.split() == [str(t) for t in want]
    for args, needle in ((["--preset", SMALL.name, "-p", "hi"], "has no tokenizer; pass --prompt-ids"),
                         (["--preset", "nope", "--prompt-ids", "1"], "unknown preset 'nope'")):
        res = runner.invoke(cli.app, ["generate", *args])
        assert res.exit_code == 2 and res.stderr.startswith("error: ") and needle in res.stderr, res.output
    res = runner.invoke(cli.app, ["generate", str(tiny_model_dir()), "--preset", SMALL.name,
                                  "--prompt-ids", "1"])
    assert res.exit_code == 2 and "either MODEL or --preset" in res.stderr


def test_shipped_model_recorded_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A project recorded the tiny model's install path: after a regular then an editable install the
    path was gone and verify noted it. By name, any install's copy is found."""
    assert source_name(tiny_model_dir()) == SHIPPED_TINY == "edgellm:tiny"
    assert source_name(tmp_path) == str(tmp_path) and source_path(str(tmp_path)) == tmp_path
    moved = tmp_path / "other-install" / "tiny"
    shutil.copytree(tiny_model_dir(), moved)
    from edgellm.models import shipped

    monkeypatch.setattr(shipped, "tiny_model_dir", lambda: moved)
    assert source_path(SHIPPED_TINY) == moved and source_name(moved) == SHIPPED_TINY


@pytest.mark.slow
def test_compile_records_the_shipped_model_by_name_and_verify_finds_it(tmp_path: Path) -> None:
    from edgellm.runtime.project import Project
    from edgellm.runtime.verify import Report, _model

    out = tmp_path / "p"
    r = runner.invoke(cli.app, ["compile", "-o", str(out), "--no-onnx-reference", "--reference-decode", "0"])
    assert r.exit_code == 0, r.output
    p = Project.open(out)
    assert p.manifest["model_source"] == "edgellm:tiny"
    rep = Report(str(out), "none", [1])
    _model(p, rep)
    assert not rep.notes and [(x.pair, x.ok) for x in rep.rows] == [("image vs source", True)]


@pytest.mark.slow
def test_compile_preset_and_estimates_design_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """compile --preset writes the preset's random model once into EDGELLM_CACHE and builds the design
    estimate chooses with the same --context/--clock/--lut-cap/--set."""
    from edgellm.boards import load_board
    from edgellm.commands.design_opts import apply_sets
    from edgellm.compiler.design import DesignParams
    from edgellm.compiler.dse import explore

    monkeypatch.setitem(PRESETS, SMALL.name, SMALL)
    monkeypatch.setenv("EDGELLM_CACHE", str(tmp_path / "cache"))
    opts = ["--context", "64", "--clock", "200", "--lut-cap", "0.6", "--set", "weight_buffer=bram"]
    out = tmp_path / "p"
    r = runner.invoke(cli.app, ["compile", "--preset", SMALL.name, "-o", str(out), "--no-onnx-reference",
                                "--reference-decode", "0", *opts])
    assert r.exit_code == 0, r.output
    m = json.loads((out / "manifest.json").read_text())
    ckpt = tmp_path / "cache" / "presets" / f"{SMALL.name}-seed{model_names.PRESET_SEED}"
    assert m["model_source"] == str(ckpt) and (ckpt / "config.json").is_file()
    board = load_board("kv260")
    want = apply_sets(explore(SMALL, board, DesignParams(max_context=64), {"lut": 0.6}, 200.0), SMALL, board,
                      {"weight_buffer": "bram"}).params
    assert m["design"] == want.to_dict()
    assert (m["design"]["max_context"], m["design"]["clock_mhz"], m["design"]["weight_buffer"]) == \
        (64, 200.0, "bram")
    est = runner.invoke(cli.app, ["estimate", "--preset", SMALL.name, "--json", *opts])
    assert est.exit_code == 0 and json.loads(est.stdout)["boards"]["kv260"]["design"] == m["design"]
    before = (ckpt / "model.safetensors").stat().st_mtime_ns
    assert model_names.preset_checkpoint(SMALL.name) == ckpt
    assert (ckpt / "model.safetensors").stat().st_mtime_ns == before  # reused, not rewritten


@pytest.mark.parametrize("args,needle", [
    (["--set", "tables"], "expected FIELD=VALUE"),
    (["--set", "nope=1"], "unknown design field"),
    (["--set", "tables=x"], "--set tables=x: not a int"),
    (["--set", "clock_mhz=200"], "use --clock"),
    (["--set", "prefill_pipeline=maybe"], "not a bool"),
    (["--preset", "nope"], "unknown preset 'nope'"),
    (["--context", "0"], "--context"),
    (["--clock", "0"], "--clock must be a number of MHz in (0, 1000]"),
    (["--lut-cap", "1.5"], "--lut-cap must be a fraction in (0, 1]"),
    (["--preset", "bitnet_b1_58-large", "--board", "nope"], "unknown board 'nope'"),  # before the model
])
def test_compile_option_errors_leave_nothing(tmp_path: Path, args: list[str], needle: str,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGELLM_CACHE", str(tmp_path / "cache"))
    r = runner.invoke(cli.app, ["compile", "-o", str(tmp_path / "p"), *args])
    assert r.exit_code == 2 and r.stderr.startswith("error: ") and needle in r.stderr, r.output
    assert not (tmp_path / "p").exists() and not (tmp_path / "cache").exists()
