"""The tiny model's training corpus: Jane Austen's six novels, from a Debian package.

Source: Debian bookworm package `r-cran-janeaustenr` (version 1.0.0-1; the CRAN package janeaustenr
by Julia Silge, MIT licence), which carries the Project Gutenberg texts of Emma, Mansfield Park,
Northanger Abbey, Persuasion, Pride and Prejudice and Sense and Sensibility (public domain) as an R
lazy-load database. Install step (no R needed): `apt-get download r-cran-janeaustenr` then
`dpkg-deb -x`; `fetch_corpus()` does both into a cache folder and parses the R serialization itself.

Split (deterministic): in each novel the last 5% of paragraphs are held out for validation.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import subprocess
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from edgellm.errors import EdgeLLMError

DEB_PACKAGE = "r-cran-janeaustenr"
DATA_DIR = "usr/lib/R/site-library/janeaustenr/data"
BOOKS = ("emma", "mansfieldpark", "northangerabbey", "persuasion", "prideprejudice", "sensesensibility")
VAL_FRACTION = 0.05
SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>")  # ids 0, 1, 2 (ModelConfig bos_id / eos_id)
LICENCE = ("Texts: Project Gutenberg editions of Jane Austen's novels (public domain); packaged by "
           "janeaustenr (Julia Silge, MIT) as Debian r-cran-janeaustenr 1.0.0-1")


class _RReader:
    """Minimal reader of R's XDR serialization (version 2/3) for vectors, lists and attributes."""

    def __init__(self, raw: bytes) -> None:
        if raw[:2] != b"X\n":
            raise EdgeLLMError("corpus: not an XDR R serialization stream")
        self.raw, self.p = raw, 2
        self.refs: list[object] = []
        version = self._int()
        self.p += 8
        if version == 3:
            self.p += 4 + self._int_at(self.p)

    def _int_at(self, p: int) -> int:
        return struct.unpack(">i", self.raw[p:p + 4])[0]

    def _int(self) -> int:
        v = self._int_at(self.p)
        self.p += 4
        return v

    def read(self) -> object:
        """The next object: list (VECSXP), list[int], list[str], dict (pairlist), str or None."""
        flags = self._int()
        typ, has_attr, has_tag = flags & 0xFF, flags & (1 << 9), flags & (1 << 10)
        if typ == 254:  # NILVALUE
            return None
        if typ == 1:  # SYMSXP -> its name (remembered for REFSXP)
            self.refs.append(self.read())
            return self.refs[-1]
        if typ == 255:  # REFSXP: an earlier symbol
            idx = flags >> 8 or self._int()
            return self.refs[idx - 1]
        if typ == 9:  # CHARSXP
            n = self._int()
            s = "" if n < 0 else self.raw[self.p:self.p + n].decode("utf-8")
            self.p += max(n, 0)
            return s
        if typ == 2:  # LISTSXP (pairlist): tag -> value
            out: dict = {}
            while typ == 2:
                if has_attr:
                    self.read()
                tag = self.read() if has_tag else str(len(out))
                out[str(tag)] = self.read()
                flags = self._int()
                typ, has_attr, has_tag = flags & 0xFF, flags & (1 << 9), flags & (1 << 10)
            return out
        n = self._int()
        if typ in (10, 13):  # LGLSXP, INTSXP
            vals = list(struct.unpack(f">{n}i", self.raw[self.p:self.p + 4 * n]))
            self.p += 4 * n
        elif typ in (16, 19):  # STRSXP, VECSXP
            vals = [self.read() for _ in range(n)]
        else:
            raise EdgeLLMError(f"corpus: unsupported R type {typ} in serialization")
        if has_attr:
            attrs = self.read()
            names = attrs.get("names") if isinstance(attrs, dict) else None
            if names is not None:
                return dict(zip(names, vals, strict=True))
        return vals


def cache_dir() -> Path:
    """Where the extracted package lives ($EDGELLM_CACHE or ~/.cache/edgellm)."""
    return Path(os.environ.get("EDGELLM_CACHE", Path.home() / ".cache" / "edgellm")) / "corpus"


def fetch_package(dest: Path | None = None) -> Path:
    """Download and extract the Debian package (once); returns the R data folder."""
    root = (dest or cache_dir()) / DEB_PACKAGE
    data = root / DATA_DIR
    if (data / "Rdata.rdb").exists():
        return data
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            subprocess.run(["apt-get", "download", DEB_PACKAGE], cwd=tmp, check=True, capture_output=True)
            deb = next(Path(tmp).glob("*.deb"))
            subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True, capture_output=True)
        except (OSError, subprocess.CalledProcessError, StopIteration) as e:
            raise EdgeLLMError(f"corpus: could not fetch Debian package {DEB_PACKAGE} "
                               f"(run `apt-get update` first): {e}") from e
    return data


def read_books(data: Path) -> dict[str, list[str]]:
    """Parse the lazy-load database: book name -> its lines."""
    index = _RReader(gzip.decompress((data / "Rdata.rdx").read_bytes())).read()
    rdb = (data / "Rdata.rdb").read_bytes()
    books = {}
    for name, (off, length) in index["variables"].items():
        blob = rdb[off:off + length]
        raw = zlib.decompress(blob[4:])
        if len(raw) != struct.unpack(">I", blob[:4])[0]:
            raise EdgeLLMError(f"corpus: {name} has a bad length in Rdata.rdb")
        books[name] = _RReader(raw).read()
    return books


def paragraphs(lines: list[str]) -> list[str]:
    """Join wrapped lines into paragraphs (blank-line separated), whitespace normalised."""
    out, cur = [], []
    for ln in lines + [""]:
        if ln.strip():
            cur.append(ln.strip())
        elif cur:
            out.append(" ".join(" ".join(cur).split()))
            cur = []
    return out


@dataclass
class Corpus:
    """Train and validation documents (paragraphs) plus a fingerprint of the text."""

    train: list[str]
    val: list[str]
    sha256: str


def fetch_corpus(dest: Path | None = None) -> Corpus:
    """Build the deterministic split: per novel, its last 5% of paragraphs go to validation."""
    books = read_books(fetch_package(dest))
    if sorted(books) != sorted(BOOKS):
        raise EdgeLLMError(f"corpus: expected books {BOOKS}, found {sorted(books)}")
    train, val = [], []
    for name in BOOKS:
        ps = paragraphs(books[name])
        cut = int(round(len(ps) * (1 - VAL_FRACTION)))
        train += ps[:cut]
        val += ps[cut:]
    h = hashlib.sha256("\n".join(train + ["<val>"] + val).encode()).hexdigest()
    return Corpus(train, val, h)


def train_tokenizer(texts: list[str], vocab_size: int) -> str:
    """Byte-level BPE (tokenizers) on the training paragraphs; ids 0/1/2 = <pad>/<bos>/<eos>.
    Returns the tokenizer JSON text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator((t + "\n" for t in texts), trainer=trainer)
    return tok.to_str()


def encode_paragraphs(tokenizer_json: str, texts: list[str]) -> list[list[int]]:
    """Token ids of each paragraph followed by a newline."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(tokenizer_json)
    return [enc.ids for enc in tok.encode_batch([t + "\n" for t in texts])]


def encode_stream(tokenizer_json: str, texts: list[str]) -> list[int]:
    """encode_paragraphs, concatenated."""
    return [i for ids in encode_paragraphs(tokenizer_json, texts) for i in ids]
