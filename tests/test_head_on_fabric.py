"""The LM head is built on the fabric: the DSE never projects a head on the ARM cores for a compiled design
(the runtime has no host-side head), and compile refuses one in one line."""

from pathlib import Path

from typer.testing import CliRunner

from edgellm import cli
from edgellm.boards import load_board
from edgellm.compiler.dse import explore
from edgellm.models.loaders import load_model
from edgellm.models.shipped import resolve_model_path

runner = CliRunner()


def test_dse_keeps_the_head_on_the_fabric() -> None:
    """PYNQ-Z2 with the shipped model: the ARM head projected faster (490 vs 330 tok/s), so the search chose
    it although compile builds the fabric head."""
    qm, _ = load_model(resolve_model_path(None))
    res = explore(qm.config, load_board("pynq_z2"))
    assert res.params.lm_head_on_fabric


def test_compile_refuses_an_arm_head(tmp_path: Path) -> None:
    out = tmp_path / "p"
    r = runner.invoke(cli.app, ["compile", "--board", "pynq_z2", "-o", str(out),
                                "--set", "lm_head_on_fabric=false"])
    assert r.exit_code != 0 and r.stderr.startswith("error: ") and "lm_head_on_fabric" in r.stderr, r.output
    assert len(r.stderr.strip().splitlines()) == 1
    assert not out.exists()
