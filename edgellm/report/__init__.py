"""`edgellm report` / `edgellm estimate --html`: one self-contained HTML page of a design's projected
resources and speed (inline SVG plots, no script, nothing fetched): gather.py collects the data,
timing.py and roofline.py derive the per-layer/per-stage times and the roofline points, svg.py and
plots.py draw, page.py assembles.
"""
