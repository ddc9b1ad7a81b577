"""Open a compiled project directory: manifest.json (validated), checksummed weights.bin and embed.bin,
the host-side embedding lookup. numpy only (runs on the board).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgellm.compiler import interface as itf
from edgellm.errors import EdgeLLMError
from edgellm.models.config import ModelConfig
from edgellm.models.numerics import NumericsPlan

SCHEMA = "edgellm.manifest/1"
MANIFEST = "manifest.json"
REQUIRED = ("schema", "model", "numerics", "interface", "interface.version", "interface.hdr_off",
            "interface.prog_off", "interface.max_t", "interface.max_ctx", "interface.registers",
            "memory", "memory.regions", "memory.static_bytes", "memory.total_bytes", "weights",
            "weights.file", "weights.sha256", "host", "host.embed_file", "host.embed_dtype",
            "host.vocab", "host.hidden", "host.sha256")
REGIONS = ("h", "logits", "argmax", "program", "taps", "k_cache", "v_cache")
EMBED_DTYPES = {"bf16": np.uint16, "f32": np.float32}


class ProjectError(EdgeLLMError):
    """A project directory that is incomplete, inconsistent or tampered with."""


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(chunk):
            h.update(b)
    return h.hexdigest()


def _get(d: dict[str, Any], dotted: str) -> Any:
    cur: Any = d
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            raise KeyError(dotted)
        cur = cur[part]
    return cur


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


@dataclass
class Project:
    """A validated project directory (checksums verified at open unless asked not to)."""

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
        """Parse and validate path/manifest.json; verify sha256 of every listed file."""
        p = Path(path)
        if not p.is_dir():
            raise ProjectError(f"project directory {p} does not exist")
        mf = p / MANIFEST
        if not mf.is_file():
            raise ProjectError(f"{p} is not an edgellm project: {MANIFEST} is missing (run edgellm compile)")
        try:
            m = json.loads(mf.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ProjectError(f"{mf}: not valid JSON ({e})") from None
        if not isinstance(m, dict):
            raise ProjectError(f"{mf}: expected a JSON object")
        for key in REQUIRED:
            try:
                _get(m, key)
            except KeyError:
                raise ProjectError(f"{mf}: missing field {key!r}") from None
        if m["schema"] != SCHEMA:
            raise ProjectError(f"{mf}: schema {m['schema']!r} is not supported "
                               f"(this runtime reads {SCHEMA!r})")
        i = m["interface"]
        if int(i["version"]) != itf.INTERFACE_VERSION:
            raise ProjectError(f"{mf}: interface version {i['version']} != {itf.INTERFACE_VERSION} "
                               "(recompile the project with this edgellm)")
        try:
            cfg = ModelConfig.from_dict(m["model"])
            plan = NumericsPlan(**m["numerics"])
        except (TypeError, ValueError, EdgeLLMError) as e:
            raise ProjectError(f"{mf}: bad model/numerics section: {' '.join(str(e).split())}") from None
        iface = Interface(int(i["version"]), int(i["hdr_off"]), int(i["prog_off"]), int(i["max_t"]),
                          int(i["max_ctx"]), int(i.get("top_k", 0)), str(i.get("ip_name", "edgellm_top")),
                          {str(k): int(v) for k, v in i["registers"].items()})
        mem = m["memory"]
        regions = {k: (int(r["offset"]), int(r["size"])) for k, r in mem["regions"].items()}
        for r in REGIONS:
            if r not in regions:
                raise ProjectError(f"{mf}: memory.regions has no {r!r} region")
        proj = cls(p, m, cfg, plan, iface, regions, int(mem["static_bytes"]), int(mem["total_bytes"]))
        proj._check_consistency()
        if verify:
            proj.verify_files()
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
        t = self.manifest.get("tokenizer")
        return self.file(t) if t else None

    def verify_files(self) -> list[str]:
        """sha256 of weights.bin, embed.bin, tokenizer.json (all required) and of every other file in
        manifest['files'] that is present (a deployment leaves the build-only files out); ProjectError
        on a mismatch or a missing required file. Returns the listed files that are absent."""
        m = self.manifest
        checks = {m["weights"]["file"]: m["weights"]["sha256"], m["host"]["embed_file"]: m["host"]["sha256"]}
        listed = dict(m.get("files") or {})
        required = set(checks) | ({m["tokenizer"]} if m.get("tokenizer") else set())
        checks.update(listed)
        absent = []
        for rel, want in checks.items():
            f = self.file(rel)
            if not f.is_file():
                if rel in required or rel not in listed:
                    raise ProjectError(f"{f} is missing (listed in {MANIFEST})")
                absent.append(rel)
                continue
            got = sha256_file(f)
            if got != want:
                raise ProjectError(f"{f}: sha256 {got[:16]}... does not match the manifest's "
                                   f"{str(want)[:16]}...; the file is corrupt or was modified, refusing it")
        if m.get("tokenizer") and m["tokenizer"] not in checks:
            if not self.file(m["tokenizer"]).is_file():
                raise ProjectError(f"{self.file(m['tokenizer'])} is missing (listed in {MANIFEST})")
        return absent

    def _check_consistency(self) -> None:
        c, i, mf = self.config, self.iface, self.path / MANIFEST
        if self.static_bytes > self.total_bytes:
            raise ProjectError(f"{mf}: static_bytes {self.static_bytes} > total_bytes {self.total_bytes}")
        for name, (o, n) in self.regions.items():
            if o < 0 or n < 0 or o + n > self.total_bytes:
                raise ProjectError(f"{mf}: region {name!r} [{o}, {o + n}) lies outside the "
                                   f"{self.total_bytes}-byte buffer")
        want = {"h": i.max_t * c.hidden_size * 4, "logits": c.vocab_size * 4,
                "program": (c.n_layers + 1) * itf.DESC_WORDS * 4}
        for name, size in want.items():
            if self.regions[name][1] < size:
                raise ProjectError(f"{mf}: region {name!r} holds {self.regions[name][1]} bytes, needs {size}")
        if i.max_t < 1 or i.max_ctx < 1 or i.max_ctx > c.max_context:
            raise ProjectError(f"{mf}: max_t {i.max_t} / max_ctx {i.max_ctx} out of range")
        if i.prog_off != self.regions["program"][0]:
            raise ProjectError(f"{mf}: interface.prog_off {i.prog_off} is not the program region's offset")
        h = self.manifest["host"]
        if (int(h["vocab"]), int(h["hidden"])) != (c.vocab_size, c.hidden_size):
            raise ProjectError(f"{mf}: host embedding [{h['vocab']}][{h['hidden']}] does not match the model "
                               f"[{c.vocab_size}][{c.hidden_size}]")
        if h["embed_dtype"] not in EMBED_DTYPES:
            raise ProjectError(f"{mf}: host.embed_dtype {h['embed_dtype']!r} is not one of "
                               f"{', '.join(EMBED_DTYPES)}")

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
