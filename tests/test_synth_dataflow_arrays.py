"""hw/synth_dataflow.py's array-fanout rule (through synth_check.check_text / check_paths): an array of a
DATAFLOW region (a local, or an array parameter the region passes on) that two of its processes write, or
two read, is flagged; one writer and one reader, one process that both reads and writes it, and a pointer
parameter (an m_axi port) are not. Also: a process call right after a `#pragma` line is a process."""

from pathlib import Path

from edgellm.hw import synth_check

HELPERS = """
void fill(int a[8]) { for (int i = 0; i < 8; i++) { a[i] = i; } }
void fill2(int a[8]) { for (int i = 0; i < 8; i++) { a[i].v = i; } }
void bump(int a[8]) { for (int i = 0; i < 8; i++) { a[i] += 1; } }
void sum(const int a[8], int *o) { int s = 0; for (int i = 0; i < 8; i++) { s += a[i]; } o[0] = s; }
void sum2(const int a[8], int *o) { o[0] = twice(a[3]); }
void take(int v, int *o) { o[0] = v; }
void via(int a[8]) { fill(a); }
void rows(int b[4][8]) { for (int i = 0; i < 4; i++) { fill(b[i]); } }
void opaque(int a[8]) { mystery(a); }
int twice(int v) { return 2 * v; }
"""


def region(body: str, params: str = "int *o") -> str:
    return (HELPERS + f"void top({params}) {{\n#pragma HLS INLINE off\n#pragma HLS DATAFLOW\n"
            "  int a[8];\n  int b[4][8];\n" + body + "}\n")


def fanout(text: str) -> list[str]:
    found = synth_check.check_text(Path("k.h"), text, set())
    return [f.detail for f in found if f.rule == "array-fanout"]


def test_two_writers_flagged():
    got = fanout(region("  fill(a);\n  fill2(a);\n  sum(a, o);\n"))
    assert len(got) == 1 and "array a has 2 writers" in got[0] and "fill, fill2" in got[0], got


def test_two_readers_flagged_on_the_second_process_line():
    text = region("  fill(a);\n  sum(a, o);\n  sum2(a, o);\n")
    found = [f for f in synth_check.check_text(Path("k.h"), text, set()) if f.rule == "array-fanout"]
    assert len(found) == 1 and "array a has 2 readers" in found[0].detail, found
    assert text.split("\n")[found[0].line - 1].strip() == "sum2(a, o);"


def test_one_writer_one_reader_passes():
    assert fanout(region("  fill(a);\n  sum(a, o);\n")) == []
    # a read-modify-write process is one process (writer and reader), then a second reader is one too many
    assert fanout(region("  bump(a);\n")) == []
    assert len(fanout(region("  bump(a);\n  sum(a, o);\n"))) == 1


def test_element_passed_to_a_scalar_reads():
    got = fanout(region("  fill(a);\n  take(a[2], o);\n  sum(a, o);\n"))
    assert len(got) == 1 and "array a has 2 readers" in got[0] and "take" in got[0], got


def test_passed_on_and_rows_of_a_two_dimensional_array():
    got = fanout(region("  via(a);\n  fill(a);\n  sum(a, o);\n"))
    assert len(got) == 1 and "via, fill" in got[0], got
    # rows(b) writes b through fill(b[i]); a second writer of a row of b is a second writer of b
    got = fanout(region("  rows(b);\n  fill(b[1]);\n  sum(b[0], o);\n"))
    assert len(got) == 1 and "array b has 2 writers" in got[0], got


def test_array_parameter_is_a_channel_and_a_pointer_is_not():
    params = "int *o, int c[8], int *p"
    got = fanout(region("  sum(c, o);\n  sum2(c, o);\n", params))
    assert len(got) == 1 and "array c has 2 readers" in got[0], got
    assert fanout(region("  sum(p, o);\n  sum2(p, o);\n", params)) == []  # an m_axi port: not a channel


def test_undecided_direction_makes_no_claim():
    assert fanout(region("  opaque(a);\n  fill(a);\n  sum(a, o);\n")) == []
    assert fanout(region("  nowhere(a);\n  fill(a);\n  sum(a, o);\n")) == []


def test_no_dataflow_pragma_no_claim():
    text = region("  fill(a);\n  fill2(a);\n  sum(a, o);\n")
    assert fanout(text.replace("#pragma HLS DATAFLOW\n", "")) == []
    assert len(fanout(text)) == 1  # control


def test_a_call_after_a_pragma_line_is_a_process():
    """The first process right after `#pragma HLS DATAFLOW` (a line ending in a word) was read as the
    second half of a declaration `T x(...)` and dropped, hiding its accesses from both fan-out rules."""
    text = (HELPERS + "void top(int *o, int c[8]) {\n#pragma HLS INLINE off\n#pragma HLS DATAFLOW\n"
            "  fill(c);\n  fill2(c);\n}\n")
    got = fanout(text)
    assert len(got) == 1 and "fill, fill2" in got[0], got
    stream = ("void wr(hls::stream<int> &s) { s.write(1); }\n"
              "void top2(hls::stream<int> &s) {\n#pragma HLS DATAFLOW\n  wr(s);\n  wr(s);\n}\n")
    found = synth_check.check_text(Path("k.h"), stream, set())
    assert [f.rule for f in found if f.rule == "stream-fanout"] == ["stream-fanout"], found


def test_library_passes_and_its_arrays_are_read():
    found = synth_check.check_paths([Path(synth_check.__file__).resolve().parent / "include"])
    assert [f for f in found if f.rule == "array-fanout"] == []


def test_library_mutant_flagged(tmp_path):
    # the 4-port tile loader's port-1 slice made to fill port 0's bank: two writers of b0, found through
    # load_port_slice (INLINE), SliceLoad::run and load_port_slice_mem down to put_column's store
    lib = Path(synth_check.__file__).resolve().parent / "include" / "edgellm"
    for f in lib.glob("*.h"):
        (tmp_path / f.name).write_text(f.read_text())
    src = tmp_path / "weight_buffer.h"
    text = src.read_text()
    old = "load_port_slice<CFG, 3>(w3, tile, rows_t, nb, unit, b3);"
    assert text.count(old) == 1
    src.write_text(text.replace(old, old.replace("b3);", "b0);")))
    found = [f for f in synth_check.check_paths([tmp_path]) if f.rule == "array-fanout"]
    assert len(found) == 1 and found[0].path.name == "weight_buffer.h", found
    assert "array b0 has 2 writers" in found[0].detail and "TileLoader::run" in found[0].detail
