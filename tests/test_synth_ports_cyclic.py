"""hw/synth_ports.py's port-budget rule on cyclic and block ARRAY_PARTITIONs (hw/synth_banks.py): each bank
is one memory with the array's ports. Every test that expects a finding fails on the rule before this
model (which exempted cyclic and block partitions)."""

from pathlib import Path

from edgellm.hw import synth_check


def _found(tmp_path: Path, text: str) -> list[str]:
    p = tmp_path / "k.h"
    p.write_text(text)
    return [f.detail for f in synth_check.check_paths([p]) if f.rule == "port-budget"]


def _loop(part: str, stmt: str, decl: str = "int a[64];", tpl: str = "") -> str:
    """f with a local array a under `part` (pragma text after `variable = a`) and an II=1 loop over c
    whose body is `stmt` inside a loop over l unrolled four times (l = 0..3)."""
    return (f"{tpl}int f(const int *x, int n, int r) {{\n  {decl}\n"
            f"#pragma HLS ARRAY_PARTITION variable = a {part}\n"
            "  int y = 0;\n  for (int c = 0; c < 16; c++) {\n#pragma HLS PIPELINE II = 1\n"
            f"    for (int l = 0; l < 4; l++) {{\n#pragma HLS UNROLL\n      {stmt}\n    }}\n"
            "  }\n  return y;\n}\n")


def _one(n: int) -> list[str]:
    return [f"a {n} accesses on one memory per iteration of an II=1 loop in f"]


def test_unrolled_lanes_each_in_their_bank(tmp_path: Path) -> None:
    """cyclic factor 4: c * 4 + l for l = 0..3 is bank l, one read each (the attention core's form); two
    more lanes a bank apart (l + 4, l + 8) put three reads in every bank."""
    part = "type = cyclic factor = 4"
    assert _found(tmp_path, _loop(part, "y += a[c * 4 + l];")) == []
    assert _found(tmp_path, _loop(part, "y += a[c * 4 + l] + a[c * 4 + l + 4];")) == []  # two ports
    three = "y += a[c * 4 + l] + a[c * 4 + l + 4] + a[c * 4 + l + 8];"
    assert _found(tmp_path, _loop(part, three)) == _one(3)
    # the same under block: c * 4 + l, l + 4, l + 8 are all runtime indices (every bank)
    assert _found(tmp_path, _loop("type = block factor = 4", "y += a[c * 4 + l];")) == _one(4)


def test_symbolic_factor(tmp_path: Path) -> None:
    """A factor of unknown value (a template parameter): X * F + s is bank s, and distinct lanes s of one
    runtime X + s are distinct banks (a rotation); a third read at a runtime index of another form counts
    against every bank."""
    tpl = "template <int F>\n"
    part = "cyclic factor = F"  # the older syntax: no `type =`
    lanes = "y += a[c * F + l] + a[(c + 1) * F + l];"
    assert _found(tmp_path, _loop(part, lanes, tpl=tpl)) == []
    assert _found(tmp_path, _loop(part, lanes.replace(";", " + a[r];"), tpl=tpl)) == _one(3)
    rotation = "y += a[x[c] + l] + a[c + l];"
    assert _found(tmp_path, _loop(part, rotation, tpl=tpl)) == []
    assert _found(tmp_path, _loop(part, rotation.replace(";", " + a[x[c] + l + 1];"), tpl=tpl)) != []


def test_a_rotation_spanning_the_factor(tmp_path: Path) -> None:
    """A known factor: (X + s) % 4 decides the bank of X + s, so offsets 0..3 and 4..7 of one X share the
    banks; a modulus the factor divides keeps the bank, one it does not makes the index unknown."""
    part = "type = cyclic factor = 4"
    assert _found(tmp_path, _loop(part, "y += a[x[c] + l] + a[x[c] + l + 4];")) == []
    assert _found(tmp_path, _loop(part, "y += a[x[c] + l] + a[x[c] + l + 4] + a[x[c] + l + 8];")) == _one(3)
    assert _found(tmp_path, _loop(part, "y += a[(x[c] + l) % 8];")) == []
    assert _found(tmp_path, _loop(part, "y += a[(x[c] + l) % 6];")) == _one(4)


def test_bound_storage_of_a_cyclic_array(tmp_path: Path) -> None:
    """ram_s2p: one read port per bank, so two lanes' reads in one bank (l and l + 4) are one too many;
    a read and a write of one bank are not."""
    part = "type = cyclic factor = 4\n#pragma HLS BIND_STORAGE variable = a type = ram_s2p impl = bram"
    assert _found(tmp_path, _loop(part, "y += a[c * 4 + l] + a[c * 4 + l + 4];")) == _one(2)
    assert _found(tmp_path, _loop(part, "a[c * 4 + l] = a[c * 4 + l + 4] + 1;")) == []


def test_every_dimension_and_a_second_one(tmp_path: Path) -> None:
    """dim = 0 partitions each dimension cyclic by the factor; dim = 2 leaves dimension 1 one memory per
    bank of dimension 2."""
    decl = "int a[4][64];"
    stmt = "y += a[0][c * 4 + l] + a[1][c * 4 + l] + a[2][c * 4 + l];"
    assert _found(tmp_path, _loop("cyclic factor = 4 dim = 0", stmt, decl)) == []
    assert _found(tmp_path, _loop("cyclic factor = 4 dim = 2", stmt, decl)) == _one(3)


def test_block_partitions(tmp_path: Path) -> None:
    """block factor 4 of 64 elements: blocks of 16; static indices 16 apart are distinct banks, three in
    one block are three reads of one bank; a known factor of a declared size is needed."""
    part = "type = block factor = 4 dim = 1"
    spread = "y += a[0] + a[16] + a[32] + a[48] + a[1] + a[17];"
    assert _found(tmp_path, _loop(part, spread.replace("l", "0"))) == []
    assert _found(tmp_path, _loop(part, "y += a[0] + a[1] + a[15];")) == _one(3)
    assert _found(tmp_path, _loop(part, "y += a[0] + a[16] + a[32];")) == []
    tpl = "template <int F>\n"  # factor unknown: a static index may be in any bank
    assert _found(tmp_path, _loop("block factor = F", "y += a[0] + a[16] + a[32];", tpl=tpl)) == _one(3)


def test_a_known_constant_factor(tmp_path: Path) -> None:
    """A factor named by a constant of literal value (as a generated project defines them) is that value:
    offsets 0..3, 4..7 and 8..11 of one X share banks; of unknown value they would be twelve banks."""
    part = "type = cyclic factor = kCyc"
    three = "y += a[x[c] + l] + a[x[c] + l + 4] + a[x[c] + l + 8];"
    assert _found(tmp_path, _loop(part, three, tpl="const int kCyc = 4;\n")) == _one(3)
    assert _found(tmp_path, _loop(part, three, tpl="const int kCyc = 16;\n")) == []


def test_the_attention_core_lanes(tmp_path: Path) -> None:
    """hw/include's attention core reads q / K and writes o at sc * A + j, lane j of A in its own bank of
    the cyclic partitions (no finding); lanes wrapped modulo the runtime d would share them."""
    import shutil

    lib = Path(synth_check.__file__).resolve().parent / "include"
    shutil.copytree(lib, tmp_path / "include")
    core = tmp_path / "include" / "edgellm" / "attention_core.h"
    lane = "const int i = sc * A + j;"
    assert core.read_text().count(lane) == 2

    def found() -> list[str]:
        return sorted(f.detail.split()[0] for f in synth_check.check_paths([tmp_path / "include"])
                      if f.rule == "port-budget")

    assert found() == []
    core.write_text(core.read_text().replace(lane, "const int i = (sc * A + j) % d;"))
    assert found() == ["kt", "o", "qb", "vt"]


def test_symbolic_offsets(tmp_path: Path) -> None:
    """Static offsets of unknown value (H: maybe a multiple of F) do not make banks distinct: x + l, x + l + H
    and x + l - H may share every bank (rotate-half RoPE's element and partners with F dividing H); lanes
    l of one symbolic offset still do. A conditional index is of no recognised form."""
    tpl = "template <int F, int H>\n"
    part = "type = cyclic factor = F"
    assert _found(tmp_path, _loop(part, "y += a[c + l] + a[c + l + H];", tpl=tpl)) == []
    assert _found(tmp_path, _loop(part, "y += a[c + l] + a[c + l + H] + a[c + l - H];", tpl=tpl)) == _one(3)
    assert _found(tmp_path, _loop(part, "y += a[c + l + H] + a[(c + H) + l + 1];", tpl=tpl)) == []
    assert _found(tmp_path, _loop(part, "y += a[r < H ? c + l : c + l + 1];", tpl=tpl)) == _one(4)


def test_a_factor_of_the_whole_dimension(tmp_path: Path) -> None:
    """cyclic / block by the dimension's size (the same text, or both known) is a complete partition:
    registers; by half of it, two elements a bank."""
    stmt = "y += a[r] + a[x[c]] + a[x[c + 1]];"
    assert _found(tmp_path, _loop("type = cyclic factor = 64", stmt)) == []
    assert _found(tmp_path, _loop("type = block factor = 64", stmt)) == []
    assert _found(tmp_path, _loop("type = cyclic factor = 32", stmt)) == _one(3)
    tpl = "template <int N>\n"
    assert _found(tmp_path, _loop("type = cyclic factor = N", stmt, "int a[N];", tpl)) == []
