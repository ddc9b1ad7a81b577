"""`edgellm calibrate-draft DIR`: self-speculation's draft layers calibrated on the golden model of a
compiled project's weights and stored in DIR/speculation.json (listed in the manifest with its sha256);
`--speculate self` then drafts with them. Bad input is one `error:` line and leaves the project as it was.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from shared_cli import one_error
from shared_project import compile_e2e_project
from typer.testing import CliRunner

from edgellm.cli import app
from edgellm.runtime.drafters import DRAFT_FILE

runner = CliRunner()
FAST = ["--n-new", "6", "--k", "2", "--max-prompts", "1"]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared tiny project (shared_project.compile_e2e_project: 2 layers, a trained tokenizer, a KV
    cache of 64 positions)."""
    return compile_e2e_project(tmp_path_factory.mktemp("e2e"))[1]


@pytest.fixture
def proj(built: Path, tmp_path: Path) -> Path:
    """A copy of the tiny project to write into."""
    return Path(shutil.copytree(built, tmp_path / "proj"))


def snapshot(d: Path) -> dict[str, bytes]:
    """Every file of a project by relative path, for 'left as it was'."""
    return {str(f.relative_to(d)): f.read_bytes() for f in sorted(d.rglob("*")) if f.is_file()}


def golden_of(d: Path):
    from edgellm.models.backend import GoldenBackend
    from edgellm.runtime.project import Project
    from edgellm.runtime.verify import model_from_image

    p = Project.open(d)
    return p, GoldenBackend(model_from_image(p), p.numerics)


def test_writes_the_calibration_and_self_speculation_uses_it(proj: Path) -> None:
    from edgellm.boards import load_board
    from edgellm.compiler.cost import speculative as cost_spec
    from edgellm.compiler.design import DesignParams
    from edgellm.runtime.drafters import load_draft_layers
    from edgellm.runtime.generation import generate
    from edgellm.runtime.sampling import SamplingParams
    from edgellm.runtime.speculative import SpecConfig

    res = runner.invoke(app, ["calibrate-draft", str(proj), *FAST])
    assert res.exit_code == 0, res.output
    rec = json.loads((proj / DRAFT_FILE).read_text())
    layers = rec["draft_layers"]
    assert layers and set(layers) < {0, 1} and len(set(layers)) == len(layers)  # a proper subset
    assert [c["draft_layers"] for c in rec["candidates"]] == [[0], [1]]
    assert rec["k"] == 2 and rec["n_new"] == 6 and rec["prompts"] == 1 and rec["costs"] == "projected"
    assert "eval_slice.txt" in rec["prompt_source"]
    # the costs are the compiler's projection for the project's design and board
    p, g = golden_of(proj)  # Project.open verifies every listed sha256: still a closed set

    d = p.manifest["design"]
    dp = DesignParams(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()
                         if k in DesignParams.__dataclass_fields__})
    assert rec["head_share"] == cost_spec.head_share(p.config, load_board("kv260"), dp)
    data = (proj / DRAFT_FILE).read_bytes()
    assert p.manifest["files"][DRAFT_FILE] == hashlib.sha256(data).hexdigest()
    out = res.stdout
    assert f"draft layers {','.join(map(str, layers))} of 2: acceptance" in out
    assert "projected decode speed-up" in out and "costs projected for the project's design on kv260" in out
    assert out.count("chosen") == 1 and "written" in out
    # a golden-backend generation drafts with the stored layers; greedy output equals plain decode
    stored = load_draft_layers(proj, p.config.n_layers)
    assert list(stored) == layers
    ids = [1, 5, 9, 13, 5, 9]
    params = SamplingParams(max_new_tokens=12, stop_at_eos=False)
    plain = generate(g, ids, params)
    fast = generate(g, ids, params, speculate=SpecConfig("self", k_max=2, k_min=2, draft_layers=stored))
    assert fast.tokens == plain.tokens and fast.speculation.draft_passes > 0


def test_prompts_file_and_unpriced_design(proj: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """--prompts FILE: blank-line separated prompts, at most --max-prompts of them, each cut to a bounded
    token count; a design the compiler cannot price falls back to the default costs and says so."""
    from edgellm.compiler.cost import speculative as cost_spec
    from edgellm.runtime import drafters

    def unpriced(*a, **k):
        raise ValueError("no such design")

    seen: list[list[int]] = []
    real = drafters.calibrate_draft_layers

    def calibrate(backend, prompts, **kw):
        seen.extend(prompts)
        return real(backend, prompts, **kw)

    monkeypatch.setattr(cost_spec, "head_share", unpriced)
    monkeypatch.setattr(drafters, "calibrate_draft_layers", calibrate)
    f = tmp_path / "prompts.txt"
    f.write_text("the quick brown fox jumps over the lazy dog\r\n\r\n  \n"
                 + "edge FPGAs run ternary language models " * 20 + "\n\n\nthird prompt, not used\n")
    res = runner.invoke(app, ["calibrate-draft", str(proj), "--prompts", str(f), "--n-new", "6", "--k", "2",
                              "--max-prompts", "2"])
    assert res.exit_code == 0, res.output
    rec = json.loads((proj / DRAFT_FILE).read_text())
    assert rec["prompts"] == 2 and rec["prompt_source"] == str(f)
    assert rec["costs"] == "defaults" and rec["head_share"] == 0.2 and rec["row_cost"] == 0.03
    assert rec["max_prompt_tokens"] == 32  # min(32, the cache's 64 - 6 new - 2 drafts - 1)
    assert len(seen) == 2 and seen[0][0] == seen[1][0] == 1  # BOS first
    assert len(seen[0]) < 32 and len(seen[1]) == 32  # the long one cut to the bound
    assert "note: the compiler cannot price this project's design (no such design)" in res.stdout


def _bad_utf8(d: Path) -> list[str]:
    (d / "p.txt").write_bytes(b"fine\n\n\xff\xfe not utf-8\n")
    return ["--prompts", str(d / "p.txt")]


def _empty(d: Path) -> list[str]:
    (d / "p.txt").write_text("\n  \n\t\n\n")
    return ["--prompts", str(d / "p.txt")]


@pytest.mark.parametrize("extra,msg", [
    (["--n-new", "3"], "--n-new must be in 4..256 at --k 2, got 3"),
    (["--n-new", "257"], "--n-new must be in 4..256 at --k 2, got 257"),
    (["--n-new", "60"], "--n-new must be in 4..59 at --k 2 and a KV cache of 64 positions, got 60"),
    (["--k", "0"], "--k must be in 1..8, got 0"),
    (["--k", "9"], "--k must be in 1..8, got 9"),
    (["--max-prompts", "0"], "--max-prompts must be in 1..64, got 0"),
    (["--max-prompts", "65"], "--max-prompts must be in 1..64, got 65"),
    (lambda d: ["--prompts", str(d / "absent.txt")], "absent.txt does not exist"),
    (lambda d: ["--prompts", str(d)], "is a directory"),
    (_bad_utf8, "is not valid UTF-8 text (byte 0xff at offset 6)"),
    (_empty, "holds no prompt (prompts are separated by blank lines)"),
])
def test_bad_options_write_nothing(proj: Path, tmp_path: Path, extra, msg: str) -> None:
    before = snapshot(proj)
    args = extra(tmp_path) if callable(extra) else extra
    res = runner.invoke(app, ["calibrate-draft", str(proj), "--k", "2", *args])
    one_error(res, msg)
    assert snapshot(proj) == before


def _no_manifest(d: Path) -> None:
    (d / "manifest.json").unlink()


def _no_weights(d: Path) -> None:
    (d / "weights.bin").unlink()


def _undecodable_weights(d: Path) -> None:
    m = json.loads((d / "manifest.json").read_text())
    m["weights"]["rows_per_tile"] = m["design"]["rows"] = 0
    (d / "manifest.json").write_text(json.dumps(m))


def _no_tokenizer(d: Path) -> None:  # a project compiled from a checkpoint without one
    m = json.loads((d / "manifest.json").read_text())
    m.pop("tokenizer")
    m["files"] = {k: v for k, v in m["files"].items() if "tokenizer" not in k}
    (d / "manifest.json").write_text(json.dumps(m))
    (d / "tokenizer.json").unlink()


@pytest.mark.parametrize("damage,msg", [
    (_no_manifest, "is not an edgellm project: manifest.json is missing"),
    (_no_tokenizer, "this project has no tokenizer: calibrate-draft tokenizes its prompts with it"),
    (_no_weights, "weights.bin is missing"),
    (_undecodable_weights, "cannot decode the weight image"),
])
def test_bad_projects_write_nothing(proj: Path, damage, msg: str) -> None:
    damage(proj)
    before = snapshot(proj)
    one_error(runner.invoke(app, ["calibrate-draft", str(proj), *FAST]), msg)
    assert snapshot(proj) == before and not (proj / DRAFT_FILE).exists()


def test_not_a_project(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    one_error(runner.invoke(app, ["calibrate-draft", str(f), *FAST]), "not a directory")
    one_error(runner.invoke(app, ["calibrate-draft", str(tmp_path / "none"), *FAST]), "does not exist")


def test_one_layer_model_has_no_proper_subset(tmp_path: Path) -> None:
    from shared_project import tokenizer_json
    from tokenizers import Tokenizer

    from edgellm.compiler.pipeline import BuildConfig, run_steps
    from edgellm.compiler.steps import compile_steps
    from edgellm.models.config import ModelConfig
    from edgellm.models.loaders.hf_bitnet import save_hf_bitnet
    from edgellm.models.random_model import random_model

    tok = Tokenizer.from_str(tokenizer_json(tmp_path))
    cfg = ModelConfig(hidden_size=64, n_layers=1, n_heads=4, n_kv_heads=2, ffn_size=96,
                      vocab_size=tok.get_vocab_size(), max_context=64, bos_id=1, eos_id=2, name="one")
    ckpt = save_hf_bitnet(random_model(cfg, seed=4, density=0.5), tmp_path / "ckpt",
                          tokenizer_json=str(tmp_path / "tokenizer.json"))
    out = tmp_path / "proj"
    run_steps(BuildConfig(model=str(ckpt), board="kv260", out_dir=str(out)), compile_steps())
    before = snapshot(out)
    one_error(runner.invoke(app, ["calibrate-draft", str(out), *FAST]),
              "the model has 1 layer: self-speculation drafts with a proper subset of its layers")
    assert snapshot(out) == before


def test_ctrl_c_leaves_the_project_as_it_was(proj: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Interrupted while calibrating, or between writing speculation.json and the manifest: the project's
    files are what they were (no new file, an earlier calibration kept) and it still opens."""
    from edgellm.runtime import drafters
    from edgellm.runtime import project_files as pf
    from edgellm.runtime.project import Project

    before = snapshot(proj)

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(drafters, "calibrate_draft_layers", interrupted)
        res = runner.invoke(app, ["calibrate-draft", str(proj), *FAST])
    assert res.exit_code == 130 and snapshot(proj) == before  # click's exit on an interrupt
    real = pf.write_atomic

    def manifest_interrupted(path: Path, data: bytes) -> None:
        if path.name == "manifest.json":
            raise KeyboardInterrupt
        real(path, data)

    monkeypatch.setattr(pf, "write_atomic", manifest_interrupted)
    res = runner.invoke(app, ["calibrate-draft", str(proj), *FAST])
    assert res.exit_code == 130 and snapshot(proj) == before
    Project.open(proj)
    monkeypatch.setattr(pf, "write_atomic", real)
    drafters.save_draft_calibration(proj, {"draft_layers": [1]})
    calibrated = snapshot(proj)
    monkeypatch.setattr(pf, "write_atomic", manifest_interrupted)
    with pytest.raises(KeyboardInterrupt):
        drafters.save_draft_calibration(proj, {"draft_layers": [0]})
    assert snapshot(proj) == calibrated  # the earlier calibration, still listed with its sha256
    Project.open(proj)


def test_speculate_self_error_names_the_command() -> None:
    res = runner.invoke(app, ["generate", "--prompt", "Once", "-n", "2", "--speculate", "self"])
    one_error(res, "--speculate self needs draft layers: run `edgellm calibrate-draft DIR` "
                   "(or pass --draft-layers)")


@pytest.mark.slow
def test_shipped_tiny_project_end_to_end(tmp_path: Path) -> None:
    """The shipped tiny model compiled, calibrated with the default text, then `edgellm run --speculate
    self` on the emulator drafts with the stored layers (the same greedy text as plain) and `edgellm
    verify` passes."""
    pytest.importorskip("hls4ml")
    proj = tmp_path / "tiny"
    assert runner.invoke(app, ["compile", "-o", str(proj)]).exit_code == 0
    res = runner.invoke(app, ["calibrate-draft", str(proj), "--n-new", "8", "--max-prompts", "2"])
    assert res.exit_code == 0, res.output
    rec = json.loads((proj / DRAFT_FILE).read_text())
    assert set(rec["draft_layers"]) < {0, 1, 2, 3} and len(rec["candidates"]) == 14
    assert rec["acceptance"] > 0  # a trained model: some subset's drafts are accepted
    args = ["run", str(proj), "--device", "emu", "--prompt", "Emma was", "-n", "16", "--ignore-eos"]
    plain = runner.invoke(app, args)
    fast = runner.invoke(app, [*args, "--speculate", "self", "--spec-k-min", "2"])
    assert plain.exit_code == 0 and fast.exit_code == 0, (plain.output, fast.output)
    assert fast.stdout == plain.stdout and "draft passes 0," not in fast.stderr
    ver = runner.invoke(app, ["verify", str(proj), "--no-onnx"])
    assert ver.exit_code == 0 and "verify passed" in ver.stdout, ver.output


def test_run_prices_a_self_draft_token(proj: Path) -> None:
    """`run`/`chat`/`serve` price a self draft token for the project (commands/speculation.py for_project):
    the LM head's projected share of a decode step plus the draft layers' share of the rest, not 0 (the k
    controller and the summary's projected speed-up would count drafting as free); an explicit cost
    stays; lookup drafts stay free."""
    from edgellm.commands.speculation import for_project, project_design, spec_config
    from edgellm.compiler.cost import speculative as cost_spec
    from edgellm.runtime.drafters import draft_step_cost
    from edgellm.runtime.project import Project

    assert runner.invoke(app, ["calibrate-draft", str(proj), *FAST]).exit_code == 0
    p = Project.open(proj)
    layers = json.loads((proj / DRAFT_FILE).read_text())["draft_layers"]
    want = draft_step_cost(len(layers), p.config.n_layers, cost_spec.head_share(*project_design(p)))
    spec = for_project(spec_config("self", 2, 0, None), p)
    assert spec.draft_cost == pytest.approx(want) and 0 < spec.draft_cost < 1
    assert len(spec.pass_costs) == 3  # the verify calls priced too
    one = for_project(spec_config("self", 2, 0, "1"), p)  # --draft-layers wins over the calibration
    assert one.draft_cost == pytest.approx(draft_step_cost(1, p.config.n_layers,
                                                           cost_spec.head_share(*project_design(p))))
    assert for_project(spec_config("self", 2, 0, None, draft_cost=0.5), p).draft_cost == 0.5
    assert for_project(spec_config("lookup", 2, 0, None), p).draft_cost == 0.0


def test_k_beyond_the_accelerators_block_is_refused(proj: Path) -> None:
    """A verify pass of k drafts feeds k + 1 tokens in one accelerator call: --k past the project's max_t - 1
    would store a k the device cannot run."""
    m = json.loads((proj / "manifest.json").read_text())
    m["interface"]["max_t"] = m["interface"]["head_rows"] = 3
    (proj / "manifest.json").write_text(json.dumps(m))
    before = snapshot(proj)
    res = runner.invoke(app, ["calibrate-draft", str(proj), "--k", "3", "--n-new", "6", "--max-prompts", "1"])
    one_error(res, "--k 3: this project's accelerator takes at most 3 tokens a call, so a verify pass "
                   "drafts at most 2")
    assert snapshot(proj) == before


def test_read_only_project_is_one_error(proj: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A project directory the user cannot write: one error line before any calibration runs, nothing
    written (checked through os.access, so it holds when the suite runs as root, which ignores modes)."""
    import os

    from edgellm.commands import calibrate_draft

    real = os.access

    def access(path, mode, *a, **kw):  # the project directory alone is read-only
        if Path(path).resolve() == proj.resolve() and mode & os.W_OK:
            return False
        return real(path, mode, *a, **kw)

    monkeypatch.setattr(calibrate_draft.os, "access", access)
    before = snapshot(proj)
    one_error(runner.invoke(app, ["calibrate-draft", str(proj), *FAST]),
              "the project directory is not writable: cannot store speculation.json")
    assert snapshot(proj) == before and not (proj / DRAFT_FILE).exists()
