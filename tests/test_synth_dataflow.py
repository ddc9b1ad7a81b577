"""hw/synth_dataflow.py's stream-fanout rule (through synth_check.check_text / check_paths): a DATAFLOW
region's stream with two producers or two consumers is flagged; one producer and one consumer, and a
stream whose direction cannot be decided, are not."""

from pathlib import Path

from edgellm.hw import synth_check

HELPERS = """
void wr(hls::stream<int> &s) { s.write(1); }
void wr2(hls::stream<int> &s) { s << 2; }
void rd(hls::stream<int> &s, int *o) { o[0] = s.read(); }
void rd2(hls::stream<int> &s, int *o) { int v; s >> v; o[0] = v; }
void fwd(hls::stream<int> &q) { wr(q); }
void opaque(hls::stream<int> &s) { mystery(s); }
struct Procs {
  static void run(hls::stream<int> &a, hls::stream<int> &b) {
#pragma HLS INLINE
    EDGELLM_PROCESS(wr(a));
    EDGELLM_PROCESS(wr2(b));
  }
};
"""


def region(body: str) -> str:
    return (HELPERS + "void top(int *o) {\n#pragma HLS INLINE off\n#pragma HLS DATAFLOW\n"
            "  hls::stream<int> s(\"s\"), t(\"t\");\n" + body + "}\n")


def fanout(text: str) -> list[str]:
    found = synth_check.check_text(Path("k.h"), text, set())
    return [f.detail for f in found if f.rule == "stream-fanout"]


def test_two_producers_flagged():
    got = fanout(region("  wr(s);\n  wr2(s);\n  rd(s, o);\n"))
    assert len(got) == 1 and "stream s has 2 producers" in got[0] and "wr, wr2" in got[0]


def test_two_consumers_flagged_on_the_second_process_line():
    text = region("  wr(s);\n  rd(s, o);\n  rd2(s, o);\n")
    found = [f for f in synth_check.check_text(Path("k.h"), text, set()) if f.rule == "stream-fanout"]
    assert len(found) == 1 and "stream s has 2 consumers" in found[0].detail
    assert text.split("\n")[found[0].line - 1].strip() == "rd2(s, o);"


def test_one_producer_one_consumer_passes():
    assert fanout(region("  wr(s);\n  rd(s, o);\n  wr2(t);\n  rd2(t, o);\n")) == []
    assert len(fanout(region("  wr(s);\n  rd(s, o);\n  wr2(s);\n  rd2(t, o);\n"))) == 1  # control


def test_macro_form_flagged():
    body = "  EDGELLM_PROCESS(wr(s));\n  EDGELLM_PROCESS(wr2(&s));\n  EDGELLM_PROCESS(rd(s, o));\n"
    got = fanout(region(body))
    assert len(got) == 1 and "2 producers" in got[0]


def test_inline_struct_run_forwards_its_processes():
    # Procs::run writes both of its streams; the region's own writer of t is a second producer of t
    got = fanout(region("  Procs::run(s, t);\n  EDGELLM_PROCESS(wr(t));\n  rd(s, o);\n  rd(t, o);\n"))
    assert len(got) == 1 and "stream t has 2 producers" in got[0] and "wr2, wr" in got[0]
    assert fanout(region("  Procs::run(s, t);\n  rd(s, o);\n  rd(t, o);\n")) == []


def test_stream_passed_on_to_a_writing_helper():
    got = fanout(region("  fwd(s);\n  wr(s);\n  rd(s, o);\n"))
    assert len(got) == 1 and "fwd, wr" in got[0]


def test_undecided_direction_makes_no_claim():
    # opaque passes s to a function nowhere defined; an unknown callee likewise claims nothing
    assert fanout(region("  opaque(s);\n  wr(s);\n  rd(s, o);\n")) == []
    assert fanout(region("  nowhere(s);\n  wr(s);\n  rd(s, o);\n")) == []
    assert len(fanout(region("  fwd(s);\n  wr(s);\n  rd(s, o);\n"))) == 1  # control: a decided writer


def test_stream_array_elements_and_exclusive_branches():
    arr = (HELPERS + "void top(int *o) {\n#pragma HLS INLINE off\n#pragma HLS DATAFLOW\n"
           "  hls::stream<int> q[2];\n  wr(q[0]);\n  wr(q[1]);\n  rd(q[0], o);\n  rd(q[1], o);\n}\n")
    assert fanout(arr) == []
    assert len(fanout(arr.replace("wr(q[1])", "wr(q[0])"))) == 1
    # compile-time alternatives (if / else) are one process, not two
    assert fanout(region("  if (N == 1) {\n    wr(s);\n  } else {\n    wr2(s);\n  }\n  rd(s, o);\n")) == []


def test_no_dataflow_pragma_no_claim():
    text = region("  wr(s);\n  wr2(s);\n  rd(s, o);\n").replace("#pragma HLS DATAFLOW\n", "")
    assert fanout(text) == []
    assert len(fanout(region("  wr(s);\n  wr2(s);\n  rd(s, o);\n"))) == 1  # control


def test_library_passes():
    found = synth_check.check_paths([synth_check.Path(synth_check.__file__).resolve().parent / "include"])
    assert [f for f in found if f.rule == "stream-fanout"] == []


def library_copy(tmp_path: Path) -> Path:
    """hw/include/edgellm's headers copied into tmp_path (to be mutated); tmp_path."""
    lib = Path(synth_check.__file__).resolve().parent / "include" / "edgellm"
    for f in lib.glob("*.h"):
        (tmp_path / f.name).write_text(f.read_text())
    return tmp_path


def test_library_mutant_flagged(tmp_path):
    # attention_kv's second K/V port reader made to write port 0's K stream: two producers of pk0
    src = library_copy(tmp_path) / "attention_layer.h"
    text = src.read_text()
    assert text.count("key_end, pk1, pv1));") == 1
    src.write_text(text.replace("key_end, pk1, pv1));", "key_end, pk0, pv1));"))
    found = [f for f in synth_check.check_paths([tmp_path]) if f.rule == "stream-fanout"]
    assert len(found) == 1 and found[0].path.name == "attention_layer.h"
    assert "stream pk0 has 2 producers" in found[0].detail and "attention_kv" in found[0].detail


def test_template_argument_with_a_comparison_is_a_call():
    """`f<C, P < N ? P : 0>(s)` and `f<C, (P < N ? P : 0)>(s)` (top_fetch.h, layer_matmul.h) are calls
    whose stream argument's direction counts: bracket counting alone could not close their template
    arguments, so the top's weight FIFOs had no producer at all."""
    helper = ("template <int P> void push(hls::stream<int> &s) { s.write(P); }\n"
              "template <int P> void via(hls::stream<int> &s) { if (P < 4) { push<P < 4 ? P : 0>(s); } }\n"
              "template <int P> void via2(hls::stream<int> &s) { push<(P < 4 ? P : 0)>(s); }\n")
    for two in ("  via<0>(s);\n  via<1>(s);\n", "  via2<0>(s);\n  via2<1>(s);\n"):
        found = fanout(helper + region(two + "  rd(s, o);\n"))
        assert len(found) == 1 and "stream s has 2 producers" in found[0], found


def _fanout_of_mutant(tmp_path, header: str, old: str, new: str, count: int) -> list:
    """stream-fanout's findings over a copy of the library whose `header` has `old` (count times) as
    `new`."""
    src = library_copy(tmp_path) / header
    text = src.read_text()
    assert text.count(old) == count
    src.write_text(text.replace(old, new))
    return [f for f in synth_check.check_paths([tmp_path]) if f.rule == "stream-fanout"]


def test_top_weight_fifo_mutant_flagged(tmp_path):
    # the top's second fetcher made to push into port 0's weight FIFO: two producers of wq0, found through
    # FetchPorts::run (INLINE), fetch_program, lin_fetch::run and the policy's fetch (TC::mm::template fetch)
    found = _fanout_of_mutant(tmp_path, "top_fetch.h",
                              "fetch_program<TC, 1>(w1, hdr_off, prog_off, n_desc, wq1, hq1)",
                              "fetch_program<TC, 1>(w1, hdr_off, prog_off, n_desc, wq0, hq1)", 3)
    assert len(found) == 1 and found[0].path.name == "top.h", found
    assert "stream wq0 has 2 producers" in found[0].detail and "top_region" in found[0].detail


def test_geared_top_side_fifo_mutant_flagged(tmp_path):
    # the geared region's lane-2 merge made to read port 0's side FIFO: two consumers of xq0
    found = _fanout_of_mutant(tmp_path, "top.h", "lb_lane_merge<G, 2>(cq2, wq2, xq3, mq2)",
                              "lb_lane_merge<G, 2>(cq2, wq2, xq0, mq2)", 1)
    assert len(found) == 1 and "stream xq0 has 2 consumers" in found[0].detail, found
    assert "top_region_geared" in found[0].detail
