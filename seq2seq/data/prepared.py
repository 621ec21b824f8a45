"""The training corpus encoded once into memory-mapped arrays (``seq2seq prepare``).

A run directory's ``prepared/`` folder holds, for each side (``src``, ``tgt``):

- ``{side}.tokens.bin``: the subword ids of every kept sentence, one after another, in the
  smallest unsigned integer type that holds the vocabulary (no BOS/EOS);
- ``{side}.offsets.npy``: where each sentence starts in the tokens (int64);
- ``{side}.lengths.npy``: each sentence's length (the smallest unsigned type for data.max_len);

and ``header.json``: the format version, the recipe (``data.max_len``, the tokenizer settings,
``train.seed``), size, modification time and SHA-256 of both source files, SHA-256 of the
subword model(s), size and SHA-256 of every file above, and the counts of pairs read, kept and
dropped by reason. Every process of a job maps the same files (``numpy.load(mmap_mode="r")``),
so the operating system's page cache holds the corpus once per machine, however many processes
train; start-up reads only the header and the length arrays. The layout follows fairseq's
indexed datasets (``fairseq.data.indexed_dataset.MMapIndexedDataset``).

:func:`prepare` streams the source files three times, never holding their text: the first
pass checks every line (UTF-8, equal line counts, blank sides) and hashes the files; the
second picks the lines of the seeded sample the subword model is trained on (drawn by line
number, now that the count is known); the third cuts both files into chunks of whole lines that
``data.workers`` processes decode and encode. The arrays are written into a temporary folder
that is renamed to ``prepared/`` only when complete, so a crash or a full disk never leaves a
half-written dataset in use; the subword model is saved only then too.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import itertools
import json
import logging
import multiprocessing
import os
import shutil
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm import tqdm

from seq2seq.data.batching import Batch
from seq2seq.data.io import DataError, TextStream, check_same_length, split_lines
from seq2seq.data.tokenizer import JOINT_MODEL, SRC_MODEL, TGT_MODEL, Tokenizer
from seq2seq.fileio import fsync_dir
from seq2seq.vocab import BOS_ID, EOS_ID, PAD_ID

if TYPE_CHECKING:
    from seq2seq.config import Config

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
PREPARED_DIR = "prepared"
HEADER = "header.json"
SIDES = ("src", "tgt")
CHUNK_LINES = 50_000  # sentence pairs sent to an encoding worker at a time (at most)


class StaleDataError(DataError):
    """Prepared data that no longer match their sources, subword model or config."""


def file_sha256(path: str | os.PathLike[str], block: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while data := f.read(block):
            digest.update(data)
    return digest.hexdigest()


def recipe(cfg: Config) -> dict[str, Any]:
    """The settings the prepared data depend on (besides the source files themselves)."""
    return {
        "data.max_len": cfg.data.max_len,
        "data.tokenizer": asdict(cfg.data.tokenizer),
        "train.seed": cfg.train.seed,  # draws the subword model's training sample
    }


def subword_hashes(run_dir: Path) -> dict[str, str]:
    """SHA-256 of each subword model file in ``run_dir``."""
    names = (JOINT_MODEL, SRC_MODEL, TGT_MODEL)
    return {n: file_sha256(run_dir / n) for n in names if (run_dir / n).is_file()}


# --- reading ------------------------------------------------------------------------------


class PreparedData:
    """A prepared training corpus, memory-mapped: ``len(data)`` pairs, ``data.collate(indices)``.

    Nothing is read at opening but the header and the length arrays' pages as they are used;
    ``collate`` gathers a batch's ids straight from the mapped token files.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.header = read_header(self.directory)
        if self.header is None:
            raise DataError(f"{self.directory}: no prepared data ({HEADER} missing)")
        dtype = np.dtype(self.header["dtype"])
        self.tokens: dict[str, np.ndarray] = {}
        self.offsets: dict[str, np.ndarray] = {}
        self.lengths: dict[str, np.ndarray] = {}
        for side in SIDES:
            path = self.directory / f"{side}.tokens.bin"
            size = path.stat().st_size
            self.tokens[side] = (
                np.memmap(path, dtype=dtype, mode="r") if size else np.zeros(0, dtype=dtype)
            )
            self.offsets[side] = np.load(self.directory / f"{side}.offsets.npy", mmap_mode="r")
            self.lengths[side] = np.load(self.directory / f"{side}.lengths.npy", mmap_mode="r")

    def __len__(self) -> int:
        return int(self.header["pairs"]["kept"])

    def tensor_lengths(self) -> tuple[np.ndarray, np.ndarray]:
        """Per pair, the source tensor length (x + EOS) and the target's (y + EOS)."""
        return tuple(self.lengths[side].astype(np.int32) + 1 for side in SIDES)  # type: ignore[return-value]

    def pair(self, i: int) -> tuple[list[int], list[int]]:
        """The ids of pair ``i`` (no specials)."""
        out = []
        for side in SIDES:
            start = int(self.offsets[side][i])
            out.append(self.tokens[side][start : start + int(self.lengths[side][i])].tolist())
        return out[0], out[1]

    def _padded(
        self, side: str, index: np.ndarray, width: int, *, lead: int | None, tail: int | None
    ) -> np.ndarray:
        """[B, width] ids of the pairs ``index`` on one side, between an optional ``lead`` and
        ``tail`` id, right-padded with PAD_ID."""
        lengths = self.lengths[side][index].astype(np.int64)
        first = int(lead is not None)
        cols = np.arange(width - first - int(tail is not None), dtype=np.int64)
        inside = cols[None, :] < lengths[:, None]
        positions = self.offsets[side][index][:, None] + cols[None, :]
        out = np.full((len(index), width), PAD_ID, dtype=np.int64)
        body = out[:, first : first + len(cols)]
        body[inside] = self.tokens[side][positions[inside]]
        if lead is not None:
            out[:, 0] = lead
        if tail is not None:
            out[np.arange(len(index)), lengths + first] = tail
        return out

    def collate(self, indices: Iterable[int] | np.ndarray) -> Batch:
        """The padded Batch of the pairs ``indices``; equal to ``collate([pair(i) ...])``."""
        index = np.asarray(indices, dtype=np.int64)
        if index.size == 0:
            raise ValueError("collate: got an empty list of pairs")
        src_len = self.lengths["src"][index].astype(np.int64)
        tgt_len = self.lengths["tgt"][index].astype(np.int64)
        s_width, t_width = int(src_len.max()) + 1, int(tgt_len.max()) + 1
        src = self._padded("src", index, s_width, lead=None, tail=EOS_ID)
        tgt_in = self._padded("tgt", index, t_width, lead=BOS_ID, tail=None)
        tgt_out = self._padded("tgt", index, t_width, lead=None, tail=EOS_ID)
        src_tokens, tgt_tokens = int(src_len.sum()) + len(index), int(tgt_len.sum()) + len(index)
        padded = src.size + tgt_out.size
        return Batch(
            src=torch.from_numpy(src),
            tgt_in=torch.from_numpy(tgt_in),
            tgt_out=torch.from_numpy(tgt_out),
            src_tokens=src_tokens,
            tgt_tokens=tgt_tokens,
            size=len(index),
            padding=1.0 - (src_tokens + tgt_tokens) / padded,
        )


def read_header(directory: Path) -> dict[str, Any] | None:
    path = directory / HEADER
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # unreadable: stale


# --- checking -----------------------------------------------------------------------------


def stale_reason(cfg: Config, run_dir: Path, *, checksums: bool = True) -> str | None:
    """Why the prepared data in ``run_dir`` cannot be used for ``cfg`` (None: they can).

    Checks the format version, the recipe, both source files (size, then SHA-256 when the
    modification time differs), the subword model(s) and every prepared file's size (and
    SHA-256 with ``checksums``).
    """
    directory = run_dir / PREPARED_DIR
    header = read_header(directory)
    if header is None:
        return f"{directory} holds no prepared data"
    if header.get("format_version") != FORMAT_VERSION:
        return (
            f"{directory / HEADER}: format version {header.get('format_version')!r}, this "
            f"seq2seq reads {FORMAT_VERSION}"
        )
    wanted = recipe(cfg)
    for key, value in wanted.items():
        if header["recipe"].get(key) != value:
            return (
                f"{key} is {value!r} in the config but the data were prepared with "
                f"{header['recipe'].get(key)!r}"
            )
    for side, path in zip(SIDES, (cfg.data.train.src, cfg.data.train.tgt), strict=True):
        reason = source_changed(Path(path), header["sources"][side])
        if reason:
            return reason
    if subword_hashes(run_dir) != header["subword_models"]:
        return f"the subword model in {run_dir} is not the one the data were encoded with"
    for name, recorded in header["files"].items():
        path = directory / name
        if not path.is_file():
            return f"{path} is missing"
        size = path.stat().st_size
        if size != recorded["size"]:
            return f"{path} is {size} bytes, the header records {recorded['size']} (truncated?)"
        if checksums and file_sha256(path) != recorded["sha256"]:
            return f"{path} does not match its SHA-256 in the header (corrupted)"
    return None


def source_changed(path: Path, recorded: dict[str, Any]) -> str | None:
    """How ``path`` differs from the fingerprint taken when it was prepared (None: it does not).

    Size first; the content hash only when the modification time moved.
    """
    if not path.is_file():
        return f"{path}: file not found (the data were prepared from {recorded['path']})"
    stat = path.stat()
    if stat.st_size != recorded["size"]:
        return (
            f"{path} changed since the data were prepared ({stat.st_size} bytes, was "
            f"{recorded['size']})"
        )
    if stat.st_mtime_ns != recorded["mtime_ns"] and file_sha256(path) != recorded["sha256"]:
        return f"{path} changed since the data were prepared (same size, other content)"
    return None


# --- writing ------------------------------------------------------------------------------


def prepare(
    cfg: Config,
    run_dir: str | os.PathLike[str],
    *,
    tokenizer: Tokenizer | None = None,
    progress: bool = True,
) -> PreparedData:
    """The prepared training data of ``cfg`` in ``run_dir``: reused when they match the config,
    the source files and the subword model, otherwise built anew: with ``tokenizer`` when one
    is given (a subword model already in ``run_dir``), else with a subword model trained here."""
    run_dir = Path(run_dir)
    reason = stale_reason(cfg, run_dir)
    if reason is None:
        data = PreparedData(run_dir / PREPARED_DIR)
        logger.info(
            "prepared data reused: %s pairs in %s", f"{len(data):,}", run_dir / PREPARED_DIR
        )
        return data
    if (run_dir / PREPARED_DIR / HEADER).is_file():
        logger.info("preparing the training data again: %s", reason)
    build(cfg, run_dir, tokenizer=tokenizer, progress=progress)
    return PreparedData(run_dir / PREPARED_DIR)


def workers_for(cfg: Config) -> int:
    if cfg.data.workers is not None:
        return cfg.data.workers
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return cores or os.cpu_count() or 1


def build(
    cfg: Config, run_dir: Path, *, tokenizer: Tokenizer | None = None, progress: bool = True
) -> None:
    """Trains the subword model on a seeded sample of the training text (unless ``tokenizer``
    is given), then encodes the text with it.

    Nothing is written before the first pass has checked every line of both files.
    """
    data = cfg.data
    paths = {"src": Path(data.train.src), "tgt": Path(data.train.tgt)}
    stats = {side: path.stat() if path.is_file() else None for side, path in paths.items()}
    streams = {side: TextStream(path) for side, path in paths.items()}
    started = time.perf_counter()
    train_subwords = tokenizer is None
    blank = dict.fromkeys(SIDES, 0)
    with _bar(progress, "checking") as bar:
        for side in SIDES:
            for block in streams[side]:
                blank[side] += len(block) - sum(1 for _ in filter(str.strip, block))
                if bar is not None:
                    bar.update(len(block))
    counts = {side: streams[side].lines for side in SIDES}
    check_same_length(paths["src"], counts["src"], paths["tgt"], counts["tgt"])
    _check_blank_lines(paths, counts["src"], blank)
    logger.info("checked %s sentence pairs in %.1f s", f"{counts['src']:,}", _since(started))
    if train_subwords:
        tokenizer = Tokenizer.train(
            data.tokenizer, streams["src"], streams["tgt"], seed=cfg.train.seed
        )
        logger.info("trained the subword model (%.1f s so far)", _since(started))
    sources = {
        side: {
            "path": str(paths[side]),
            "size": stats[side].st_size,
            "mtime_ns": stats[side].st_mtime_ns,
            "sha256": streams[side].sha256,
        }
        for side in SIDES
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / f".{PREPARED_DIR}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        tmp.mkdir()
        header = _encode(cfg, tokenizer, paths, tmp, counts["src"], progress=progress)
        for side in SIDES:
            if header["sha256"][side] != sources[side]["sha256"]:
                raise DataError(f"{paths[side]} changed while it was being prepared")
        del header["sha256"]
        if header["pairs"]["kept"] == 0:
            raise DataError(
                f"{paths['src']}: no training pair is left after dropping"
                f" {header['pairs']['dropped']['too_long']:,} pairs longer than data.max_len="
                f"{data.max_len} subword tokens and"
                f" {header['pairs']['dropped']['empty_source']:,} with an empty source; raise"
                " data.max_len"
            )
        if train_subwords:  # only now: a failure above leaves the run directory as it was
            tokenizer.save(run_dir)
        header.update(
            format_version=FORMAT_VERSION,
            recipe=recipe(cfg),
            sources=sources,
            subword_models=subword_hashes(run_dir),
        )
        _write_file(tmp / HEADER, json.dumps(header, indent=2).encode("utf-8"))
        _replace_dir(tmp, run_dir / PREPARED_DIR)
    except OSError as e:
        raise DataError(
            f"{run_dir}: cannot write the prepared data ({e.strerror or e}); nothing was kept."
            " Free some space or choose another --run-dir"
        ) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    kept, dropped = header["pairs"]["kept"], header["pairs"]["dropped"]
    logger.info(
        "prepared %s of %s pairs in %.1f s (dropped: %s longer than data.max_len=%d, %s with an"
        " empty source) into %s",
        f"{kept:,}",
        f"{header['pairs']['read']:,}",
        time.perf_counter() - started,
        f"{dropped['too_long']:,}",
        data.max_len,
        f"{dropped['empty_source']:,}",
        run_dir / PREPARED_DIR,
    )


def _check_blank_lines(paths: dict[str, Path], lines: int, blank: dict[str, int]) -> None:
    """Refuses a side whose every line is blank; warns when over 1 % of the targets are."""
    for side in SIDES:
        if blank[side] == lines:
            raise DataError(
                f"{paths[side]}: all {lines:,} lines are empty; expected one sentence per line"
            )
    if blank["tgt"] > 0.01 * lines:
        logger.warning(
            "%s: %s of %s target lines (%.1f%%) are empty; the model learns to translate their"
            " sources into nothing",
            paths["tgt"],
            f"{blank['tgt']:,}",
            f"{lines:,}",
            100 * blank["tgt"] / lines,
        )


def _since(started: float) -> float:
    return time.perf_counter() - started


@contextlib.contextmanager
def _bar(enabled: bool, desc: str) -> Iterator[tqdm | None]:
    if not enabled:
        yield None
        return
    bar = tqdm(desc=desc, unit=" lines", unit_scale=True, dynamic_ncols=True, leave=False)
    try:
        yield bar
    finally:
        bar.close()


def smallest_uint(largest: int) -> np.dtype:
    for dtype in (np.uint8, np.uint16, np.uint32):
        if largest <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    return np.dtype(np.uint64)


class _HashingWriter:
    """A file written in order whose bytes also pass through SHA-256."""

    def __init__(self, f: IO[bytes]) -> None:
        self.f, self.digest, self.size = f, hashlib.sha256(), 0

    def write(self, data: bytes | memoryview) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.f.write(data)


def _write_file(path: Path, data: bytes) -> dict[str, Any]:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _encode(
    cfg: Config,
    tokenizer: Tokenizer,
    paths: dict[str, Path],
    out: Path,
    total: int,
    *,
    progress: bool,
) -> dict[str, Any]:
    """Second pass: encodes the pairs in worker processes and writes the arrays into ``out``."""
    max_len = cfg.data.max_len
    dtype = smallest_uint(max(tokenizer.src_vocab_size, tokenizer.tgt_vocab_size) - 1)
    streams = {side: TextStream(paths[side]) for side in SIDES}
    chunks = _pair_chunks(streams, paths)
    lengths: dict[str, list[np.ndarray]] = {side: [] for side in SIDES}
    dropped = {"too_long": 0, "empty_source": 0}
    files: dict[str, dict[str, Any]] = {}
    with contextlib.ExitStack() as stack:
        writers = {
            side: _HashingWriter(stack.enter_context(open(out / f"{side}.tokens.bin", "wb")))
            for side in SIDES
        }
        bar = stack.enter_context(_bar(progress, "encoding"))
        if bar is not None:
            bar.reset(total=total)
        # Worker processes pay off beyond a few chunks; below, encoding here is quicker.
        workers = workers_for(cfg) if total > 4 * CHUNK_LINES else 1
        for result in _map_ordered(tokenizer, max_len, dtype, chunks, workers):
            for side in SIDES:
                writers[side].write(memoryview(result[side]).cast("B"))
                lengths[side].append(result[f"{side}_lengths"])
            for reason in dropped:
                dropped[reason] += result[reason]
            if bar is not None:
                bar.update(result["read"])
        for side in SIDES:
            writers[side].f.flush()
            os.fsync(writers[side].f.fileno())
            files[f"{side}.tokens.bin"] = {
                "size": writers[side].size,
                "sha256": writers[side].digest.hexdigest(),
            }
    for side in SIDES:
        side_lengths = np.concatenate(lengths[side])  # already in the smallest type
        lengths[side] = []
        offsets = np.zeros(len(side_lengths), dtype=np.int64)
        np.cumsum(side_lengths[:-1], dtype=np.int64, out=offsets[1:])
        for name, array in (("offsets", offsets), ("lengths", side_lengths)):
            files[f"{side}.{name}.npy"] = _write_npy(out / f"{side}.{name}.npy", array)
    kept = len(side_lengths)
    return {
        "dtype": dtype.name,
        "vocab_size": {"src": tokenizer.src_vocab_size, "tgt": tokenizer.tgt_vocab_size},
        "pairs": {"read": total, "kept": kept, "dropped": dropped},
        "files": files,
        "sha256": {side: streams[side].sha256 for side in SIDES},
    }


def _write_npy(path: Path, array: np.ndarray) -> dict[str, Any]:
    with open(path, "wb") as f:
        writer = _HashingWriter(f)
        np.lib.format.write_array(writer, array, allow_pickle=False)
        f.flush()
        os.fsync(f.fileno())
    return {"size": writer.size, "sha256": writer.digest.hexdigest()}


def _pair_chunks(
    streams: dict[str, TextStream], paths: dict[str, Path]
) -> Iterator[tuple[bytes, bytes, bool]]:
    """(source bytes, target bytes, first chunk?) of the same whole lines of both files: the
    undecoded text that a worker decodes, so that this process only reads and cuts."""
    blocks = {side: streams[side].raw_blocks() for side in SIDES}
    rest = {side: b"" for side in SIDES}
    first = True
    while True:
        for side in SIDES:
            if not rest[side]:
                rest[side] = next(blocks[side], b"")
        if not (rest["src"] and rest["tgt"]):
            if rest["src"] or rest["tgt"]:
                raise DataError(f"{paths['src']} or {paths['tgt']} changed while being prepared")
            return
        ends = {
            side: np.flatnonzero(np.frombuffer(rest[side], dtype=np.uint8) == 10) for side in SIDES
        }
        n = min(len(ends["src"]), len(ends["tgt"]), CHUNK_LINES)
        cut = {side: int(ends[side][n - 1]) + 1 for side in SIDES}
        yield rest["src"][: cut["src"]], rest["tgt"][: cut["tgt"]], first
        rest = {side: rest[side][cut[side] :] for side in SIDES}
        first = False


# The encoding worker's state, set once per process by _init_worker.
_WORKER: dict[str, Any] = {}


def _init_worker(models: dict[str, bytes], max_len: int, dtype: str) -> None:
    _WORKER.update(tokenizer=Tokenizer.from_bytes(models), max_len=max_len, dtype=np.dtype(dtype))


def _encode_chunk(src_text: bytes, tgt_text: bytes, first: bool) -> dict[str, Any]:
    """Ids of one chunk of pairs (whole lines of UTF-8 text, checked by the first pass), without
    the pairs dropped (too long, empty source)."""
    tokenizer, max_len, dtype = _WORKER["tokenizer"], _WORKER["max_len"], _WORKER["dtype"]
    src_lines = split_lines(src_text[:-1].decode("utf-8"), first=first)
    tgt_lines = split_lines(tgt_text[:-1].decode("utf-8"), first=first)
    ids = {
        "src": tokenizer.encode_src_batch(src_lines, threads=1),
        "tgt": tokenizer.encode_tgt_batch(tgt_lines, threads=1),
    }
    lens = {side: np.fromiter(map(len, ids[side]), np.int64, len(ids[side])) for side in SIDES}
    empty = lens["src"] == 0
    too_long = ~empty & ((lens["src"] > max_len) | (lens["tgt"] > max_len))
    keep = ~(empty | too_long)
    result: dict[str, Any] = {
        "read": len(src_lines),
        "too_long": int(too_long.sum()),
        "empty_source": int(empty.sum()),
    }
    for side in SIDES:
        kept = itertools.compress(ids[side], keep)
        result[side] = np.array(list(itertools.chain.from_iterable(kept)), dtype=dtype)
        result[f"{side}_lengths"] = lens[side][keep].astype(smallest_uint(max_len))
    return result


def _map_ordered(
    tokenizer: Tokenizer,
    max_len: int,
    dtype: np.dtype,
    chunks: Iterator[tuple[bytes, bytes, bool]],
    workers: int,
) -> Iterator[dict[str, Any]]:
    """``_encode_chunk`` over ``chunks`` in ``workers`` processes, results in order, with at
    most two chunks per worker in flight (memory stays bounded however long the corpus)."""
    init_args = (tokenizer.to_bytes(), max_len, dtype.name)
    if workers <= 1:
        _init_worker(*init_args)
        try:
            yield from (_encode_chunk(*chunk) for chunk in chunks)
        finally:
            _WORKER.clear()
        return
    # Not "fork": a process that forks while another of its threads holds a lock (tqdm's
    # monitor, torch's thread pools) can leave the child waiting on it for ever.
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    with context.Pool(workers, initializer=_init_worker, initargs=init_args) as pool:
        pending: collections.deque = collections.deque()
        for chunk in chunks:
            pending.append(pool.apply_async(_encode_chunk, chunk))
            if len(pending) >= 2 * workers:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()


def _replace_dir(new: Path, target: Path) -> None:
    """Puts the complete folder ``new`` in place of ``target`` (renames, then removes the old)."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.old")
        target.rename(old)
    new.rename(target)
    fsync_dir(target.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
