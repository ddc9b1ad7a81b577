"""Open a compiled project directory: manifest.json (validated against runtime/manifest_schema.py), the
closed set of its files (runtime/project_files.py: every file listed with its sha256, nothing else),
the host-side embedding lookup. numpy only (runs on the board).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgellm.compiler import interface as itf
from edgellm.errors import EdgeLLMError
from edgellm.models.config import ModelConfig
from edgellm.models.numerics import NumericsPlan
from edgellm.runtime import jsonfile
from edgellm.runtime import manifest_schema as ms
from edgellm.runtime import project_files as pf
from edgellm.runtime.layout import HEAD_ROWS_MAX, head_rows, logits_row
from edgellm.runtime.manifest_schema import MANIFEST, SCHEMA, ProjectError
from edgellm.runtime.project_files import sha256_file

__all__ = ["MANIFEST", "SCHEMA", "EMBED_DTYPES", "Interface", "Project", "ProjectError", "sha256_file"]

REGIONS = ("h", "logits", "argmax", "program", "taps", "k_cache", "v_cache")
EMBED_DTYPES = {"bf16": np.uint16, "f32": np.float32}
MAX_MANIFEST_BYTES = 16 << 20


@dataclass(frozen=True)
class Interface:
    """The accelerator's host interface as the manifest records it."""

    version: int
    hdr_off: int
    prog_off: int
    max_t: int
    max_ctx: int
    top_k: int
    ip_name: str
    registers: dict[str, int] = field(default_factory=dict)
    head_rows: int = 1  # rows one OP_HEAD scores in one pass (the compiled head's MAX_TOK: design head_lanes)


def read_manifest(p: Path) -> dict[str, Any]:
    """p/manifest.json parsed and checked against the schema (ProjectError otherwise)."""
    if not p.is_dir():
        raise ProjectError(f"project directory {p} does not exist")
    mf = p / MANIFEST
    if mf.is_symlink() or mf.exists() and not mf.is_file():
        raise ProjectError(f"{mf} is not a regular file; refusing the project")
    if not mf.is_file():
        raise ProjectError(f"{p} is not an edgellm project: {MANIFEST} is missing (run edgellm compile)")
    with pf.open_regular(mf) as f:
        raw = f.read(MAX_MANIFEST_BYTES + 1)
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ProjectError(f"{mf}: larger than {MAX_MANIFEST_BYTES >> 20} MiB; not an edgellm manifest")
    try:
        m = jsonfile.loads(raw.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ProjectError(f"{mf}: not valid JSON ({' '.join(str(e).split())[:200]})") from None
    ms.validate(m, str(mf))
    return m


@dataclass
class Project:
    """A validated project directory: a closed set of files, their sha256 verified at open unless asked
    not to."""

    path: Path
    manifest: dict[str, Any]
    config: ModelConfig
    numerics: NumericsPlan
    iface: Interface
    regions: dict[str, tuple[int, int]]  # name -> (byte offset, size)
    static_bytes: int
    total_bytes: int
    _embed: np.ndarray | None = None

    @classmethod
    def open(cls, path: str | Path, verify: bool = True) -> Project:
        """Parse and validate path/manifest.json, check that the directory holds exactly the listed files
        (no symbolic links) and the sizes of weights.bin / embed.bin; verify: also every sha256."""
        p = Path(path)
        m = read_manifest(p)
        mf = p / MANIFEST
        i = m["interface"]
        if i["version"] != itf.INTERFACE_VERSION:
            raise ProjectError(f"{mf}: interface version {i['version']} != {itf.INTERFACE_VERSION} "
                               "(recompile the project with this edgellm)")
        try:
            cfg = ModelConfig.from_dict(m["model"])
            plan = NumericsPlan(**m["numerics"])
        except (TypeError, ValueError, OverflowError, AttributeError, EdgeLLMError) as e:
            why = " ".join(str(e).split())[:300]
            raise ProjectError(f"{mf}: bad model/numerics section: {why}") from None
        rows = ms.get(m, "interface.head_rows")  # older manifests: every head built min(8, max_t) lanes
        iface = Interface(i["version"], i["hdr_off"], i["prog_off"], i["max_t"], i["max_ctx"],
                          ms.get(m, "interface.top_k"), ms.get(m, "interface.ip_name"), dict(i["registers"]),
                          head_rows(i["max_t"], HEAD_ROWS_MAX) if rows is None else rows)
        mem = m["memory"]
        regions = {k: (r["offset"], r["size"]) for k, r in mem["regions"].items()}
        for r in REGIONS:
            if r not in regions:
                raise ProjectError(f"{mf}: memory.regions has no {r!r} region")
        proj = cls(p, m, cfg, plan, iface, regions, mem["static_bytes"], mem["total_bytes"])
        proj._check_consistency()
        proj.check_closed(hashes=verify)
        return proj

    # ---- files ----

    def file(self, rel: str) -> Path:
        """A path inside the project (refuses paths that leave it)."""
        f = (self.path / rel).resolve()
        if self.path.resolve() not in f.parents:
            raise ProjectError(f"{self.path / MANIFEST}: file {rel!r} lies outside the project")
        return f

    @property
    def weights_path(self) -> Path:
        """weights.bin: the static DDR image."""
        return self.file(self.manifest["weights"]["file"])

    @property
    def embed_path(self) -> Path:
        """embed.bin: the host embedding table."""
        return self.file(self.manifest["host"]["embed_file"])

    @property
    def tokenizer_path(self) -> Path | None:
        """tokenizer.json, or None when the model has none."""
        t = ms.get(self.manifest, "tokenizer")
        return self.file(t) if t else None

    @property
    def chat_template_path(self) -> Path | None:
        """chat_template.jinja (the model's chat template), or None when the model has none."""
        t = ms.get(self.manifest, "chat_template")
        return self.file(t) if t else None

    @property
    def listed(self) -> dict[str, str]:
        """Every file of the project -> sha256 (manifest['files'], weights.bin, embed.bin)."""
        return ms.listed_files(self.manifest)

    def check_closed(self, hashes: bool = True) -> None:
        """The project is a closed set: every file under it is listed (build outputs of `edgellm build`
        excepted, runtime/project_files.py), none is missing, a symbolic link or a special file;
        weights.bin and embed.bin have their manifest sizes; hashes: every sha256 matches. The one check
        run, csim, build, verify and deploy make (ProjectError naming the file)."""
        root = self.path.resolve()
        pf.check_tree(root, self.listed, self.iface.ip_name)
        self._check_sizes()
        if hashes:
            pf.check_hashes(root, self.listed)

    def _check_sizes(self) -> None:
        c = self.config
        sizes = {self.weights_path: (self.static_bytes, f"static_bytes {self.static_bytes}")}
        dts = self.manifest["host"]["embed_dtype"]
        want = c.vocab_size * c.hidden_size * np.dtype(EMBED_DTYPES[dts]).itemsize
        sizes[self.embed_path] = (want, f"{want} ([{c.vocab_size}][{c.hidden_size}] {dts})")
        for f, (n, what) in sizes.items():
            got = f.stat().st_size
            if got != n:
                raise ProjectError(f"{f}: {got} bytes, expected {what}")

    def _check_consistency(self) -> None:
        c, i, mf = self.config, self.iface, self.path / MANIFEST
        board = self.manifest.get("board") or {}
        cap = min(ms.MAX_DDR_BYTES, board.get("ddr_bytes", ms.MAX_DDR_BYTES))
        if self.total_bytes > cap:
            raise ProjectError(f"{mf}: total_bytes {self.total_bytes} exceeds the {cap}-byte DDR the "
                               "accelerator can address on this board")
        if self.static_bytes > self.total_bytes:
            raise ProjectError(f"{mf}: static_bytes {self.static_bytes} > total_bytes {self.total_bytes}")
        wb = self.manifest["weights"].get("bytes")
        if wb is not None and wb != self.static_bytes:
            raise ProjectError(f"{mf}: weights.bytes {wb} != memory.static_bytes {self.static_bytes}")
        for name, (o, n) in self.regions.items():
            if o + n > self.total_bytes:
                raise ProjectError(f"{mf}: region {name!r} [{o}, {o + n}) lies outside the "
                                   f"{self.total_bytes}-byte buffer")
        rows = i.head_rows  # the multi-row head's results (its token lanes, at most max_t)
        if rows > i.max_t:
            raise ProjectError(f"{mf}: interface.head_rows {rows} exceeds max_t {i.max_t}")
        want = {"h": i.max_t * c.hidden_size * 4, "logits": rows * logits_row(c.vocab_size) * 4,
                "program": (c.n_layers + 1) * itf.DESC_WORDS * 4, "argmax": rows * (4 + 8 * i.top_k)}
        for name, size in want.items():
            if self.regions[name][1] < size:
                raise ProjectError(f"{mf}: region {name!r} holds {self.regions[name][1]} bytes, needs {size}")
        if i.max_t > i.max_ctx or i.max_ctx > c.max_context:
            raise ProjectError(f"{mf}: max_t {i.max_t} / max_ctx {i.max_ctx} out of range "
                               f"(1 <= max_t <= max_ctx <= {c.max_context})")
        if i.hdr_off % 4 or i.hdr_off + itf.HDR_WORDS * 4 > self.static_bytes:
            raise ProjectError(f"{mf}: interface.hdr_off {i.hdr_off}: the {itf.HDR_WORDS * 4}-byte header "
                               f"must lie 4-byte aligned inside the {self.static_bytes}-byte weights image")
        if i.prog_off != self.regions["program"][0] or i.prog_off % 4:
            raise ProjectError(f"{mf}: interface.prog_off {i.prog_off} is not the program region's offset")
        d = self.manifest.get("design") or {}
        if d.get("matmul") == "lowbit":  # a low-bit design: its engine's fields and its table region
            missing = [f for f in ("lowbit_rows", "lowbit_ports", "lowbit_max_group") if f not in d]
            if missing or "lowbit_table" not in self.regions:
                what = f"design.{missing[0]}" if missing else "memory.regions 'lowbit_table'"
                raise ProjectError(f"{mf}: a low-bit design (design.matmul 'lowbit') without {what}")
        h = self.manifest["host"]
        if (h["vocab"], h["hidden"]) != (c.vocab_size, c.hidden_size):
            raise ProjectError(f"{mf}: host embedding [{h['vocab']}][{h['hidden']}] does not match the model "
                               f"[{c.vocab_size}][{c.hidden_size}]")

    # ---- data ----

    def image(self) -> np.ndarray:
        """weights.bin as uint8 [static_bytes], its header checked against the interface."""
        f = self.weights_path
        img = np.fromfile(f, np.uint8)
        if img.size != self.static_bytes:
            raise ProjectError(f"{f}: {img.size} bytes, the manifest says static_bytes {self.static_bytes}")
        o = self.iface.hdr_off
        hdr = img[o:o + itf.HDR_WORDS * 4].view(np.uint32)
        H = itf.HDR
        if hdr[H["HDR_MAGIC"]] != itf.MAGIC:
            raise ProjectError(f"{f}: no edgellm header at offset {o} (bad magic 0x{int(hdr[0]):08x})")
        got = (int(hdr[H["HDR_N_LAYERS"]]), int(hdr[H["HDR_MAX_T"]]), int(hdr[H["HDR_MAX_CTX"]]))
        want = (self.config.n_layers, self.iface.max_t, self.iface.max_ctx)
        if got != want:
            raise ProjectError(f"{f}: header (layers, max_t, max_ctx) = {got}, manifest says {want}")
        return img

    def embed_table(self) -> np.ndarray:
        """embed.bin as (vocab, hidden) uint16 (bf16 bits) or float32, memory-mapped."""
        if self._embed is None:
            f = self.embed_path
            dt = EMBED_DTYPES[self.manifest["host"]["embed_dtype"]]
            c = self.config
            want = c.vocab_size * c.hidden_size * np.dtype(dt).itemsize
            if f.stat().st_size != want:
                dts = self.manifest["host"]["embed_dtype"]
                raise ProjectError(f"{f}: {f.stat().st_size} bytes, expected {want} "
                                   f"([{c.vocab_size}][{c.hidden_size}] {dts})")
            self._embed = np.memmap(f, dt, "r", shape=(c.vocab_size, c.hidden_size))
        return self._embed

    def embed_rows(self, tokens: np.ndarray) -> np.ndarray:
        """(T,) ids -> (T, hidden) float32, bf16 widened exactly (as QuantModel.embed_rows)."""
        ids = np.asarray(tokens, np.int64).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= self.config.vocab_size):
            raise EdgeLLMError(f"token id out of range [0, {self.config.vocab_size})")
        rows = np.asarray(self.embed_table()[ids])
        if rows.dtype == np.uint16:
            return (rows.astype(np.uint32) << 16).view(np.float32)
        return rows.astype(np.float32)

    def region(self, name: str) -> tuple[int, int]:
        """(offset, size) of a memory region."""
        try:
            return self.regions[name]
        except KeyError:
            raise ProjectError(f"{self.path / MANIFEST}: no memory region {name!r}") from None
