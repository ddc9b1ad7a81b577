"""Low-bit (W{b}A8) checkpoints compiled into projects (issue 17): a llama GGUF with a Q4_K_M mix (Q4_K +
Q6_K), a qwen2 GGUF with a Q2_K mix (Q2_K, Q3_K, Q4_K; q/k/v biases) and a GPTQ directory (4-bit,
group 64). Fast: the project's low-bit table and port images decode back to the checkpoint, compile prints
estimate's projection, the host's record checks refuse bad records in one line, a board the design does
not fit (the PYNQ-Z2) is one error line, the Ultra96-V2's design fits by its scale lanes. Slow: each
project's `edgellm csim` passes (kv260, zcu104, ultra96v2), `edgellm verify` passes on the emulator
(bit-exact per layer and stage), `edgellm run` and `edgellm generate` print text; the generated top refuses
a bad record naming the field the host names."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from shared_fixtures import run_cli
from shared_lowbit_models import tiny_config
from shared_project import tokenizer_json

from edgellm.compiler import interface as itf
from edgellm.errors import EdgeLLMError
from edgellm.models.config import ModelConfig
from edgellm.models.loaders.gguf_write import write_gguf
from edgellm.models.loaders.gptq_write import save_gptq
from edgellm.models.random_model import random_float_weights
from edgellm.runtime import bounds, bounds_lowbit
from edgellm.runtime.manifest_schema import ProjectError
from edgellm.runtime.project import Project

HAVE_CSIM = shutil.which("g++") is not None
H = itf.HDR
KINDS = ("llama-Q4_K_M", "qwen2-Q2_K", "gptq")
PROMPT = "the quick brown fox"


def _weights(cfg: ModelConfig, seed: int):  # -> FloatWeights
    fw = random_float_weights(cfg, seed=seed)
    fw.embed = fw.embed / 8
    return fw


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The three checkpoints, each with the tokenizer."""
    d = tmp_path_factory.mktemp("lowbit_models")
    tj = tokenizer_json(d)
    from tokenizers import Tokenizer

    vocab = Tokenizer.from_str(tj).get_vocab_size()
    out = {"llama-Q4_K_M": d / "llama-q4km.gguf", "qwen2-Q2_K": d / "qwen2-q2k.gguf"}
    types = write_gguf(out["llama-Q4_K_M"], _weights(tiny_config(vocab, "llama"), 1), "llama", "Q4_K_M", tj)
    assert {t for n, t in types.items() if n.startswith("blk.") and "norm" not in n} == {"Q4_K", "Q6_K"}
    assert "rope_freqs.weight" in types
    types = write_gguf(out["qwen2-Q2_K"], _weights(tiny_config(vocab, "qwen2"), 2), "qwen2", "Q2_K", tj)
    assert {"Q2_K", "Q3_K", "Q4_K"} <= set(types.values())
    llama = _weights(tiny_config(vocab, "llama"), 3)
    out["gptq"] = save_gptq(d / "gptq", llama, "llama", 4, 64, False, "gptq", tokenizer_json=tj)
    return out


def _compile(model: Path, out: Path, board: str = "kv260", *extra: str):  # -> CompletedProcess
    return run_cli("compile", str(model), "--board", board, "-o", str(out), "--reference-decode", "4", *extra)


def _record(img: np.ndarray, hdr: np.ndarray, layer: int, i: int) -> np.ndarray:
    o = int(hdr[H["HDR_LB_TABLE"]]) + 4 * (layer * 7 + i) * itf.LB_WORDS
    return img[o:o + 4 * itf.LB_WORDS].view(np.uint32)


def _host_check(p: Project, img: np.ndarray, **lim_fields: int) -> None:
    """The driver's load-time checks of an image (bounds), over the project's buffer size (lim_fields:
    Limits fields in place of the project's)."""
    full = np.zeros(p.total_bytes, np.uint8)
    full[:img.size] = img
    hdr = full[:4 * itf.HDR_WORDS].view(np.uint32)
    hdr[H["HDR_BUF_BYTES"]] = p.total_bytes
    lim = dataclasses.replace(bounds.Limits.of(p, p.total_bytes), **lim_fields)
    bounds.check_header(hdr, 0, lim)
    t = int(hdr[H["HDR_LAYER_TABLE"]])
    table = full[t:t + 4 * itf.LD_WORDS * lim.n_layers].view(np.uint32)
    bounds.check_layers(table, hdr, lim)
    lb = full[int(hdr[H["HDR_LB_TABLE"]]):][:4 * 7 * lim.n_layers * itf.LB_WORDS].view(np.uint32)
    bounds_lowbit.check_lowbit(lb, table, hdr, lim)


BAD_RECORDS = [  # (linear index, record word, value, the field the check names)
    (0, "LB_BITS", 9, "field LB_BITS"), (3, "LB_GROUP", 512, "field LB_GROUP"),
    (6, "LB_DB", 20, "field LB_DB"), (1, "LB_MMODE", 2, "field LB_MMODE"),
    (2, "LB_BIAS_OFF", 1 << 30, "field LB_BIAS_OFF"), (5, "LB_PORT1_OFF", 1 << 31, "field LB_PORT1_OFF"),
]


def test_lowbit_project_decodes_to_its_checkpoint(models: dict[str, Path], tmp_path: Path) -> None:
    """compile prints estimate's projection; the manifest's design is estimate's engine; every linear's
    record and port images decode to the checkpoint's GroupQuant and biases bit for bit; the host refuses
    a bad record in one line naming its field."""
    from edgellm.models.loaders import load_model
    from edgellm.runtime.verify import image_matches, model_from_image

    model = models["qwen2-Q2_K"]
    r = _compile(model, tmp_path / "p", "kv260", "--no-onnx-reference")
    assert r.returncode == 0, r.stderr
    est = run_cli("estimate", str(model), "--board", "kv260", "--json")
    assert est.returncode == 0, est.stderr
    e = json.loads(est.stdout)["boards"]["kv260"]
    assert f"{e['projected_decode_tok_s']['central']:.1f}" in r.stdout
    assert "edgellm compile builds" in r.stdout
    p = Project.open(tmp_path / "p")
    d, g = p.manifest["design"], e["design"]
    assert d["matmul"] == "lowbit" and g["engines"] == 1
    assert (d["lowbit_rows"], d["lowbit_ports"], d["lowbit_token_lanes"], d["lowbit_decoders"]) == (
        g["rows"], g["ports_per_engine"], g["token_lanes"], g["record_decoders"])
    img = p.image()
    hdr = img[:4 * itf.HDR_WORDS].view(np.uint32)
    assert hdr[H["HDR_LB_TABLE"]] == p.region("lowbit_table")[0] > 0
    qm, _ = load_model(model)
    assert image_matches(model_from_image(p), qm) is None
    biased = 0
    for layer in range(qm.config.n_layers):
        lo = int(hdr[H["HDR_LAYER_TABLE"]]) + 4 * layer * itf.LD_WORDS
        ld = img[lo:lo + 4 * itf.LD_WORDS].view(np.uint32)
        assert (ld[itf.LD_W_SCALE:itf.LD_W_SCALE + 7] == itf.f32_bits(1.0)).all()
        for i, n in enumerate(itf.LINEAR_ORDER):
            rec = _record(img, hdr, layer, i)
            q = qm.layers[layer].linears()[n].quant
            assert (rec[itf.LB["LB_BITS"]], rec[itf.LB["LB_GROUP"]]) == (q.bits, q.group)
            offs = [0, *(int(rec[itf.LB[f]]) for f in itf.LB_PORT_OFF)]  # one image after another
            assert all(o % 64 == 0 for o in offs) and (int(hdr[H["HDR_WEIGHTS"]]) + ld[i]) % 64 == 0
            used, unused = offs[:d["lowbit_ports"]], offs[d["lowbit_ports"]:]
            assert used == sorted(set(used)) and not any(unused)  # 0 past the engine's ports
            biased += rec[itf.LB["LB_BIAS_OFF"]] != itf.LB_NO_BIAS
    assert biased == 3 * qm.config.n_layers  # q, k, v of every layer
    _host_check(p, img)
    for i, word, value, name in BAD_RECORDS:
        bad = img.copy()
        _record(bad, hdr, 1, i)[itf.LB[word]] = value
        with pytest.raises(bounds.BoundsError, match=name) as err:
            _host_check(p, bad)
        assert "\n" not in str(err.value) and f"low-bit record of {itf.LINEAR_ORDER[i]}" in str(err.value)
    # the design's FU (sized to the model: Q2_K's 2 planes finish BW / 16 / 2 rows each) and one float step
    # fewer a token lane than its Q2_K linears need: refused at their records' LB_BITS (program_check too)
    fu = d["lowbit_float_units"]
    assert fu == 128 * d["lowbit_ports"] // 16 // 2
    with pytest.raises(bounds.BoundsError, match="field LB_BITS"):
        _host_check(p, img, lowbit_float_units=fu // 2)
    # MAXSB: the model's widest record (Q2_K: 16 groups); an engine of 8 refuses those records' LB_SB
    assert d["lowbit_max_sb"] == 16
    with pytest.raises(bounds.BoundsError, match="field LB_SB"):
        _host_check(p, img, lowbit_max_sb=8)
    # MING: the model's narrowest group (Q2_K: 16); an engine whose narrowest is 32 refuses a G16 record
    assert d["lowbit_min_group"] == 16
    with pytest.raises(bounds.BoundsError, match="field LB_GROUP") as err:
        _host_check(p, img, lowbit_min_group=32)
    assert "\n" not in str(err.value)
    r = run_cli("estimate", str(tmp_path / "p"))  # re-projected by the low-bit model (test_lowbit_reproject)
    assert r.returncode == 0 and f"{e['projected_decode_tok_s']['central']:.1f}" in r.stdout, r.stderr
    mf = tmp_path / "p" / "manifest.json"
    m = json.loads(mf.read_text())
    del m["design"]["lowbit_ports"]
    mf.write_text(json.dumps(m))
    with pytest.raises(ProjectError, match="without design.lowbit_ports"):
        Project.open(tmp_path / "p")


def test_geared_project_reads_back_and_refuses_shares_that_do_not_gear(models: dict[str, Path],
                                                                        tmp_path: Path) -> None:
    """The GPTQ model's KV260 project streams through the weight gearbox: its image decodes to the
    checkpoint through the gearbox (and not without it: port 0's image carries lane 1's words), the
    host's bounds pass; a manifest whose shares do not gear, or whose lowbit_gear is no boolean, is one
    error line on run, before any call of the device and with no text generated."""
    from edgellm.models.loaders import load_model
    from edgellm.runtime.verify import image_matches, model_from_image

    proj = tmp_path / "p"
    r = _compile(models["gptq"], proj, "kv260", "--no-onnx-reference")
    assert r.returncode == 0, r.stderr
    p = Project.open(proj)
    assert p.manifest["design"]["lowbit_gear"] is True and p.manifest["design"]["port_shares"] == [9, 7, 7, 9]
    qm, _ = load_model(models["gptq"])
    assert image_matches(model_from_image(p), qm) is None
    lim = bounds.Limits.of(p, p.total_bytes)
    assert lim.lowbit_gear.active
    _host_check(p, p.image())
    # the port images one after another at their own lengths (ports 0 and 3 carry 9 words to 1's and 2's
    # 7): no image padded to the longest one's
    img = p.image()
    hdr = img[:4 * itf.HDR_WORDS].view(np.uint32)
    rec = _record(img, hdr, 0, itf.LINEAR_ORDER.index("gate"))
    offs = [0, *(int(rec[itf.LB[f]]) for f in itf.LB_PORT_OFF)]
    sizes = np.diff(offs).tolist()
    assert sizes[0] > sizes[1] == sizes[2], offs
    try:  # read as if ungeared: another model, or none at all (its scales non-finite)
        with np.errstate(invalid="ignore", over="ignore"):
            wrong = image_matches(model_from_image(_ungeared(p)), qm)
    except EdgeLLMError as e:
        wrong = str(e)
    assert wrong is not None
    mf = proj / "manifest.json"
    good = mf.read_text()
    for change, want in ((("port_shares", [7, 9, 9, 7]), "give no gearbox"),
                         (("lowbit_gear", "yes"), "design.lowbit_gear")):
        m = json.loads(good)
        m["design"][change[0]] = change[1]
        mf.write_text(json.dumps(m))
        r = run_cli("run", str(proj), "-d", "emu", "-p", PROMPT, "-n", "1")
        errs = [ln for ln in r.stderr.splitlines() if ln.startswith("error: ")]
        assert r.returncode != 0 and len(errs) == 1 and want in errs[0], r.stderr
        assert "Traceback" not in r.stderr and not r.stdout.strip(), r.stdout
    mf.write_text(good)


def _ungeared(p: Project) -> Project:
    """p with its manifest's lowbit_gear dropped (in memory)."""
    q = Project.open(p.path)
    q.manifest = {**q.manifest, "design": {**q.manifest["design"], "lowbit_gear": False}}
    return q


def test_a_board_no_lowbit_design_fits_is_one_error_line(models: dict[str, Path], tmp_path: Path) -> None:
    """The PYNQ-Z2 (53k LUT, 220 DSP): the smallest low-bit design overruns its routing headroom; the one
    error line names the board, the smallest candidate and each resource it overruns."""
    r = _compile(models["llama-Q4_K_M"], tmp_path / "p", "pynq_z2", "--no-onnx-reference")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and errors[0] == r.stderr.strip().splitlines()[-1], r.stderr
    assert errors[0].startswith("error: no low-bit engine configuration fits pynq_z2: the smallest (1 "
                                "port(s), R 32, 1 decoder(s) of 2 scale lane(s)"), errors[0]
    assert "lut " in errors[0] and "> 75% of 53200" in errors[0]
    assert not (tmp_path / "p" / "manifest.json").exists()


def test_the_ultra96_design_fits_by_its_scale_lanes(models: dict[str, Path], tmp_path: Path) -> None:
    """The Ultra96-V2 (70k LUT): the design fits with fewer scale lanes than a whole record (SL 16 would
    not fit); the generated configuration names them; compile prints the design and its resources."""
    from edgellm.boards import load_board
    from edgellm.compiler import lowbit_estimate as le
    from edgellm.compiler.cost import lowbit as cl
    from edgellm.compiler.cost import lowbit_search as ls

    r = _compile(models["llama-Q4_K_M"], tmp_path / "p", "ultra96v2", "--no-onnx-reference")
    assert r.returncode == 0, r.stderr
    d = Project.open(tmp_path / "p").manifest["design"]
    assert d["matmul"] == "lowbit" and d["lowbit_ports"] == 1 and d["lowbit_scale_lanes"] < 16
    assert d["lowbit_max_group"] == 32 and d["head_lanes"] == 1  # Q4_K / Q6_K groups; a one-row head
    header = next((tmp_path / "p").rglob("edgellm_config.h")).read_text()
    assert f"static const int scale_lanes = {d['lowbit_scale_lanes']};" in header
    assert "static const int max_k = 256;" in header  # the model's widest input, not 8192
    src, board = le.from_path(models["llama-Q4_K_M"]), load_board("ultra96v2")
    eng, vec = ls.search(src.cfg, board, src.model, le.BUILT_ENGINES)
    assert ls.fits(src.cfg, board, eng, vec, src.model)
    whole = cl.LowbitEngine(**{**eng.__dict__, "scale_lanes": 16})
    assert not ls.fits(src.cfg, board, whole, vec, src.model)


def test_q4_0_project_builds_groups_of_32_only(tmp_path: Path) -> None:
    """A Q4_0 GGUF (every linear G32): the design's MING is 32 in the manifest, the generated lowbit_cfg and
    the estimate compile prints; the host takes its records and refuses a record narrower than MING."""
    from tokenizers import Tokenizer

    tj = tokenizer_json(tmp_path)
    cfg = tiny_config(Tokenizer.from_str(tj).get_vocab_size(), "llama")
    path = tmp_path / "q4_0.gguf"
    types = write_gguf(path, _weights(cfg, 4), "llama", "Q4_0", tj)
    assert {t for n, t in types.items() if n.startswith("blk.") and "norm" not in n} == {"Q4_0"}
    r = _compile(path, tmp_path / "p", "kv260", "--no-onnx-reference")
    assert r.returncode == 0, r.stderr
    p = Project.open(tmp_path / "p")
    d = p.manifest["design"]
    assert (d["lowbit_min_group"], d["lowbit_max_group"]) == (32, 32)
    header = next((tmp_path / "p").rglob("edgellm_config.h")).read_text()
    assert "static const int min_group = 32;" in header and "static const int max_group = 32;" in header
    est = run_cli("estimate", str(path), "--board", "kv260", "--json")
    assert est.returncode == 0, est.stderr
    assert json.loads(est.stdout)["boards"]["kv260"]["design"]["min_group"] == 32
    img = p.image()
    _host_check(p, img)
    hdr = img[:4 * itf.HDR_WORDS].view(np.uint32)
    # one parameter codec (Q4_0: 8 per-group binary16 d's a record, m = -(s * 8)), listed and generated
    assert _image_codecs(p, img, hdr) == [Q4_0_CODEC] and d["lowbit_codecs"] == [list(Q4_0_CODEC)]
    assert "static const int n_codecs = 1;" in header and _codec_rows(header) == [Q4_0_CODEC]
    bad = img.copy()
    _record(bad, hdr, 1, 4)[itf.LB["LB_MZ"]] = 9  # any integer to the fields' rules; not the codec listed
    _host_check(p, bad, lowbit_codecs=())  # an engine of any codec takes it
    with pytest.raises(bounds.BoundsError, match="field LB_MZ = 9 .*none of the 1 the engine decodes") as err:
        _host_check(p, bad)
    assert "\n" not in str(err.value) and "low-bit record of gate" in str(err.value)
    _record(img, hdr, 1, 4)[itf.LB["LB_GROUP"]] = 16
    with pytest.raises(bounds.BoundsError, match="field LB_GROUP"):
        _host_check(p, img)


Q4_0_CODEC = (8, 16, 0, 0, 1, 0, 0, 0, 8, 1)  # 8 x binary16 d (dper), m = -(s * mz), mz 8
Q4_K_CODEC = (8, 16, 6, 0, 0, 16, 6, 0, 0, 0)  # binary16 d and dmin, 8 x 6-bit sub-scales and mins
Q6_K_CODEC = (16, 16, 8, 128, 1, 0, 0, 0, 32, 0)  # binary16 d, 16 x signed 8-bit sub-scales, m = -(s * 32)


def _image_codecs(p: Project, img: np.ndarray, hdr: np.ndarray) -> list[tuple[int, ...]]:
    """The distinct codec words (LB_SB .. LB_DPER) of the image's low-bit records, sorted."""
    sb = itf.LB["LB_SB"]
    return sorted({tuple(int(v) for v in _record(img, hdr, layer, i)[sb:sb + 10])
                   for layer in range(p.config.n_layers) for i in range(7)})


def _codec_rows(header: str) -> list[tuple[int, ...]]:
    """The rows of the generated lowbit_cfg's constexpr codec table."""
    import re

    m = re.search(r"static constexpr int codec\(int i, int f\) \{ const int t\[\d+\]\[10\] = \{(.*?)\}; "
                  r"return t\[i\]\[f\]; \}", header)
    assert m, header
    return [tuple(int(v) for v in row.split(",")) for row in re.findall(r"\{([^{}]*)\}", m.group(1))]


def test_q4_k_m_project_lists_its_codecs(models: dict[str, Path], tmp_path: Path) -> None:
    """A Q4_K_M GGUF (Q4_K and Q6_K linears): the design lists exactly the two parameter codecs its linears
    are packed with (sorted) in the manifest and the generated lowbit_cfg (n_codecs, codec(i, f)); the
    host refuses a record whose codec is neither, at the first word where it leaves both."""
    r = _compile(models["llama-Q4_K_M"], tmp_path / "p", "kv260", "--no-onnx-reference")
    assert r.returncode == 0, r.stderr
    p = Project.open(tmp_path / "p")
    img = p.image()
    hdr = img[:4 * itf.HDR_WORDS].view(np.uint32)
    want = [Q4_K_CODEC, Q6_K_CODEC]
    assert _image_codecs(p, img, hdr) == want
    assert p.manifest["design"]["lowbit_codecs"] == [list(c) for c in want]
    header = next((tmp_path / "p").rglob("edgellm_config.h")).read_text()
    assert "static const int n_codecs = 2;" in header and _codec_rows(header) == want
    _host_check(p, img)
    layer, i = next((la, i) for la in range(p.config.n_layers) for i in range(7)
                    if int(_record(img, hdr, la, i)[itf.LB["LB_SB"]]) == Q4_K_CODEC[0])
    _record(img, hdr, layer, i)[itf.LB["LB_MC_OFF"]] = 32  # Q4_K's but for its mins' offset
    with pytest.raises(bounds.BoundsError, match="field LB_MC_OFF = 32 .*none of the 2"):
        _host_check(p, img)


def test_lowbit_design_fields_are_validated() -> None:
    from edgellm.compiler.design import DesignParams
    from edgellm.errors import EdgeLLMError

    DesignParams(matmul="lowbit", lowbit_rows=64, lowbit_ports=2)
    for kw, word in (({"matmul": "int4"}, "matmul"), ({"lowbit_ports": 3}, "lowbit_ports"),
                     ({"lowbit_rows": 48, "lowbit_ports": 1}, "lowbit_rows"),
                     ({"lowbit_rows": 64, "lowbit_ports": 4}, "lowbit_rows"),
                     ({"lowbit_max_group": 8}, "lowbit_max_group"),
                     ({"lowbit_decoders": 9}, "lowbit_decoders"),
                     ({"lowbit_scale_lanes": 3}, "lowbit_scale_lanes"),
                     ({"lowbit_scale_lanes": 32}, "lowbit_scale_lanes"),
                     ({"lowbit_float_units": 3}, "lowbit_float_units"),
                     ({"lowbit_float_units": 64}, "lowbit_float_units"),
                     ({"lowbit_max_sb": 0}, "lowbit_max_sb"), ({"lowbit_max_sb": 17}, "lowbit_max_sb"),
                     ({"lowbit_min_group": 8}, "lowbit_min_group"),
                     ({"lowbit_min_group": 48}, "lowbit_min_group"),
                     ({"lowbit_min_group": 64, "lowbit_max_group": 32}, "lowbit_min_group"),
                     ({"lowbit_codecs": [[8, 16, 6, 0, 0, 16, 6, 0, 0]]}, "lowbit_codecs must be a list"),
                     ({"lowbit_codecs": [[8, 16, 6, 0, 0, 16, 6, 0, 0, True]]}, "lowbit_codecs must be"),
                     ({"lowbit_codecs": [list(Q4_K_CODEC)] * 2}, "lowbit_codecs lists a codec twice"),
                     ({"lowbit_codecs": [[8, 16, 0, 0, 1, 0, 0, 0, i, 1] for i in range(9)]},
                      "at most 8 codecs"),
                     ({"lowbit_codecs": [[17, 16, 6, 0, 0, 16, 6, 0, 0, 0]]}, r"needs sb 1\.\.16"),
                     ({"lowbit_codecs": [list(Q4_K_CODEC)], "lowbit_max_sb": 4}, r"needs sb 1\.\.4"),
                     ({"lowbit_codecs": [[8, 24, 6, 0, 0, 16, 6, 0, 0, 0]]}, "needs db 16 or 32"),
                     ({"lowbit_codecs": [[8, 16, 9, 0, 0, 16, 6, 0, 0, 0]]}, "needs scb 0..8"),
                     ({"lowbit_codecs": [[8, 16, 6, 0, 1, 16, 6, 0, 0, 0]]}, "needs dmb"),
                     ({"lowbit_codecs": [[8, 16, 6, 0, 0, 16, 6, 0, 0, 2]]}, "needs dper 0 or 1")):
        with pytest.raises(EdgeLLMError, match=word):
            DesignParams(**kw)
    # a manifest's JSON lists become the tuples compile writes (signed offsets: any 32-bit integer)
    p = DesignParams(lowbit_codecs=[list(Q6_K_CODEC), [1, 32, 4, -8, 1, 0, 0, 0, -3, 0]])
    assert p.lowbit_codecs == (Q6_K_CODEC, (1, 32, 4, -8, 1, 0, 0, 0, -3, 0)) and hash(p)


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_CSIM, reason="C simulation needs g++")
@pytest.mark.parametrize("kind, board", [*((k, "kv260") for k in KINDS), ("llama-Q4_K_M", "zcu104")])
def test_lowbit_project_csim_verify_run(models: dict[str, Path], tmp_path: Path, kind: str,
                                        board: str) -> None:
    """The issue's done-when for one checkpoint: compile (kv260; zcu104's design streams 4 ports), csim
    passes, verify passes on the emulator (device vs golden bit for bit on every stage), run prints text on
    the emulator and generate on the checkpoint."""
    proj = tmp_path / "p"
    r = _compile(models[kind], proj, board)
    assert r.returncode == 0, r.stderr
    # a 4-port engine on these boards streams through the weight gearbox (9:7:7:9 shares, lowbit_gear.h):
    # the GPTQ model's and the ZCU104 design's (the tiny GGUF models' KV260 engines take 2 ports)
    design = json.loads((proj / "manifest.json").read_text())["design"]
    geared = design["lowbit_ports"] == 4
    assert geared == (kind == "gptq" or board == "zcu104") and design["lowbit_gear"] == geared
    assert ("gear_cycle = 8" in (proj / "hls" / "edgellm_config.h").read_text()) == geared
    r = run_cli("csim", str(proj))
    assert r.returncode == 0 and "csim: PASS" in r.stdout + r.stderr, r.stdout + r.stderr
    r = run_cli("verify", str(proj), "-d", "emu", "-n", "4", "--json", str(tmp_path / "v.json"))
    assert r.returncode == 0, r.stdout + r.stderr
    rep = json.loads((tmp_path / "v.json").read_text())
    device = [row for row in rep["rows"] if row["pair"] == "device vs golden"]
    assert rep["ok"] and len(device) > 10 and all(row["exact"] for row in device)
    assert any(row["pair"] == "image vs source" and row["ok"] for row in rep["rows"])
    for args in (("run", str(proj), "-d", "emu"), ("generate", str(models[kind]))):
        r = run_cli(*args, "-p", PROMPT, "-n", "6", "--ignore-eos")
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip(), r.stderr  # the decoded continuation


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_CSIM, reason="C simulation needs g++")
@pytest.mark.parametrize("kind", KINDS)
def test_lowbit_project_csim_on_the_ultra96(models: dict[str, Path], tmp_path: Path, kind: str) -> None:
    """The Ultra96-V2's design for each checkpoint (one 128-bit port, fewer scale lanes than a record's
    sub-scales: records decoded over several iterations in the generated top) passes `edgellm csim`."""
    r = _compile(models[kind], tmp_path / "p", "ultra96v2", "--no-onnx-reference")
    assert r.returncode == 0, r.stderr
    assert Project.open(tmp_path / "p").manifest["design"]["lowbit_scale_lanes"] < 16
    r = run_cli("csim", str(tmp_path / "p"))
    assert r.returncode == 0 and "csim: PASS" in r.stdout + r.stderr, r.stdout + r.stderr


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_CSIM, reason="C simulation needs g++")
def test_top_refuses_bad_records_as_the_host_does(models: dict[str, Path], tmp_path: Path) -> None:
    """The generated top's program_check (check_lb_record) reports a bad record through the status words,
    naming the field the driver's bounds_lowbit.check_lowbit names."""
    from edgellm.runtime.device import pointer_registers
    from edgellm.runtime.emulator import EmulatorDevice

    r = _compile(models["llama-Q4_K_M"], tmp_path / "p", "kv260", "--no-onnx-reference")
    assert r.returncode == 0, r.stderr
    p = Project.open(tmp_path / "p")
    dev = EmulatorDevice.for_project(p)
    buf = dev.alloc(p.total_bytes)
    img = p.image()
    hdr = img[:4 * itf.HDR_WORDS].view(np.uint32)
    prog = itf.program(p.config.n_layers, 1, 0)

    def top(image: np.ndarray) -> str | None:
        a = buf.array
        a[:] = 0
        a[:image.size] = image
        a[4 * H["HDR_BUF_BYTES"]:][:4].view(np.uint32)[0] = p.total_bytes
        a[p.iface.prog_off:p.iface.prog_off + prog.nbytes] = prog.view(np.uint8).ravel()
        dev.sync_to_device(buf)
        for off in pointer_registers(p.iface.registers).values():
            dev.write_reg64(off, buf.physical_address)
        for name, v in (("hdr_off", 0), ("prog_off", p.iface.prog_off), ("n_desc", len(prog))):
            dev.write_reg(p.iface.registers[name], v)
        dev.run(timeout_s=120)
        dev.sync_from_device(buf, 0, 4 * itf.HDR_WORDS)
        return bounds.status_error(a[4 * H["HDR_STATUS"]:][:12].view(np.uint32), p.total_bytes)

    assert top(img) is None
    for i, word, value, name in BAD_RECORDS:
        bad = img.copy()
        _record(bad, hdr, 1, i)[itf.LB[word]] = value
        with pytest.raises(bounds.BoundsError) as err:
            _host_check(p, bad)
        host = str(err.value).split(";")[0]
        got = top(bad)
        assert got is not None and got.endswith(host), (got, host)
        assert name in host


def test_compile_refuses_options_the_lowbit_design_does_not_take(models: dict[str, Path],
                                                                 tmp_path: Path) -> None:
    r = _compile(models["gptq"], tmp_path / "p", "kv260", "--set", "rows=32")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: design option rows does not apply to a low-bit")


def test_compile_clock_and_lut_cap_build_estimates_design(models: dict[str, Path], tmp_path: Path) -> None:
    """compile --clock / --lut-cap steer the low-bit search as estimate's do (they were refused): the
    manifest's design is the one `edgellm estimate --json` prints with the same options."""
    opts = ("--clock", "200", "--lut-cap", "0.6")
    r = _compile(models["gptq"], tmp_path / "p", "kv260", *opts)
    assert r.returncode == 0, r.stderr
    design = json.loads((tmp_path / "p" / "manifest.json").read_text())["design"]
    est = run_cli("estimate", str(models["gptq"]), "--board", "kv260", *opts, "--json")
    assert est.returncode == 0, est.stderr
    e = json.loads(est.stdout)["boards"]["kv260"]
    assert design["clock_mhz"] == 200 == e["clock_mhz"]["central"]
    d = e["design"]
    assert e["utilization"]["lut"] <= 0.6
    built = (design["lowbit_rows"], design["lowbit_scale_lanes"], design["fetch_depth"], design["attn_lanes"])
    assert built == (d["rows"], d["scale_lanes"], d["fetch_depth"], d["attn_lanes"])



def test_a_plan_beyond_the_boards_ddr_is_one_error_line() -> None:
    """A low-bit design's DDR check is its plan's (the ternary footprint model does not size it)."""
    from edgellm.boards import load_board
    from edgellm.compiler.steps import check_plan_fits
    from edgellm.errors import EdgeLLMError

    board, cfg = load_board("kv260"), tiny_config(300, "llama")
    embed = cfg.vocab_size * cfg.hidden_size * 2
    check_plan_fits(board.ddr_available_bytes - embed, cfg, board)
    with pytest.raises(EdgeLLMError, match=f"leaves {board.ddr_available_bytes / 2**20:.0f} MiB") as e:
        check_plan_fits(board.ddr_available_bytes - embed + 1, cfg, board)
    assert "\n" not in str(e.value)
