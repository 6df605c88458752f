#!/usr/bin/env python3
"""The pretraining corpus packed for a GPU machine without network, and a run carried between jobs.

The device machine (docs/pretraining.md, "How the shipped models are being trained") has no
network, no snakemake and no Biopython, takes 64 MiB of carried files per call and gives back at
most 8 files of 16 MiB. This script is both ends of that:

    pack           here: results/<run>/genomes -> .carry/corpus/{corpus.json, corpus.bin.xz}
    unpack         device: the archive -> DIR/genomes/<genome>/<file> (plain FASTA), sha256-checked
    tokenize       device: `genomamba tokenize` of each genome as pipelines/tokenize.smk runs it
    pretrain-args  device: the `genomamba pretrain` options pipelines/pretrain.smk gives, one a line
    take-back      here: what a device call returned -> .carry/run/ (checked), for the next call

The archive. Every fetched file of every genome becomes one plain FASTA text: a FASTA file its
decompressed bytes exactly; the GenBank file the FASTA of its records as genomamba's GenBank
reader gives them (``>NAME DEFINITION``, the ORIGIN sequence, 80 bases a line), so the device
tokenises without Biopython. ``corpus.json`` records, per file, the sha256 and size of the source
as fetched (they equal the data manifest's) and of this FASTA text (``fasta.sha256``: for a FASTA
source, ``zcat SOURCE | sha256sum``); unpack writes the text and checks that sha256, so what is
tokenised is the sequence the manifest declares. ``corpus.bin.xz`` is one xz stream (LZMA2 with
lc=4, lp=0, pb=0: the literal coder then sees the previous byte's first two bases as context) of
the concatenated sections of each file in ``corpus.json``'s order:

    packed   uint8, 4 bases a byte (A=0 C=1 G=2 T=3, first base in the top bits) of all records'
             sequences concatenated; any other byte is stored as 0 and listed under ``other``
    lower    uint32 deltas between the positions where lower case starts and stops (soft-masking)
    other    uint32 deltas of the starts of runs of one non-ACGT byte (N, IUPAC), uint32 run
             lengths, uint8 the (upper-case) byte of each run
    headers, line widths: in corpus.json (each record's header line and sequence line width)

A file whose text is not rebuilt exactly from that (uneven line lengths, CRLF, blank lines other
than at the end of the file, which are counted) is
stored as its raw text instead (``encoding: raw``); pack checks every rebuilt text against the
original before writing anything. Only numpy and the standard library are needed to unpack.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import lzma
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

FORMAT = "genomamba-corpus-pack"
VERSION = 1
ARCHIVE, INDEX = "corpus.bin.xz", "corpus.json"
GENBANK_LINE_WIDTH = 80
# lc=4: a literal (4 bases) is coded in the context of the previous byte's top 4 bits (its first
# two bases; putting the newest two there instead measured 0.6% smaller on P. falciparum); LZMA2
# allows lc + lp <= 4. pb=lp=0: positions carry no information in a stream of bases.
FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME, "lc": 4, "lp": 0, "pb": 0}]
_CODE = np.full(256, 255, np.uint8)
for _i, _b in enumerate(b"ACGT"):
    _CODE[_b] = _i
_BASES = np.frombuffer(b"ACGT", np.uint8)
RUN_FILES = ("run_config.json", "metrics.jsonl", "val_metrics.jsonl")


class PackError(Exception):
    """A corpus or run that cannot be packed, unpacked or taken back; the message says what to do."""


# ---------------------------------------------------------------- FASTA text <-> sections


def split_fasta(text: bytes) -> list[tuple[bytes, bytes, int]]:
    """(header without '>', sequence, line width) of each record of FASTA ``text``."""
    if not text.startswith(b">"):
        raise PackError("not FASTA text: it does not start with '>'")
    records = []
    for chunk in text[1:].split(b"\n>"):
        header, _, body = chunk.partition(b"\n")
        width = body.find(b"\n")
        records.append((header, body.replace(b"\n", b""), width if width > 0 else len(body)))
    return records


def fasta_text(records: list[tuple[bytes, bytes, int]]) -> bytes:
    """The FASTA text of ``records`` (header, sequence, line width): every line full but the last."""
    parts = []
    for header, seq, width in records:
        parts.append(b">" + header + b"\n")
        n = len(seq)
        if n:
            rows = -(-n // width)
            grid = np.full((rows, width + 1), ord("\n"), np.uint8)
            flat = np.zeros(rows * width, np.uint8)
            flat[:n] = np.frombuffer(seq, np.uint8)
            grid[:, :width] = flat.reshape(rows, width)
            keep = (rows - 1) * (width + 1) + (n - (rows - 1) * width)
            parts.append(grid.ravel()[:keep].tobytes() + b"\n")
    return b"".join(parts)


def _deltas(positions: np.ndarray) -> bytes:
    return np.diff(positions, prepend=0).astype("<u4").tobytes()


def encode_sequence(seq: bytes) -> dict[str, bytes]:
    """The sections (module docstring) of one file's concatenated record sequences."""
    if len(seq) >= 1 << 32:
        raise PackError("a file of 2^32 bases or more does not fit the uint32 positions")
    raw = np.frombuffer(seq, np.uint8)
    lower = (raw >= ord("a")) & (raw <= ord("z"))
    upper = np.where(lower, raw - 32, raw).astype(np.uint8)
    codes = _CODE[upper]
    other = codes == 255
    codes[other] = 0
    codes = np.concatenate([codes, np.zeros(-len(codes) % 4, np.uint8)]).reshape(-1, 4)
    packed = (codes[:, 0] << 6) | (codes[:, 1] << 4) | (codes[:, 2] << 2) | codes[:, 3]
    toggles = np.flatnonzero(np.diff(lower.astype(np.int8), prepend=0, append=0))
    # runs of one non-ACGT byte: boundaries where (other byte or -1) changes
    key = np.where(other, upper.astype(np.int16), np.int16(-1))
    bounds = np.flatnonzero(np.diff(key, prepend=-1, append=-1))
    starts, stops = bounds[:-1], bounds[1:]
    keep = key[starts] != -1
    starts, stops = starts[keep], stops[keep]
    return {
        "packed": packed.astype(np.uint8).tobytes(),
        "lower": _deltas(toggles),
        "other_starts": _deltas(starts),
        "other_lengths": (stops - starts).astype("<u4").tobytes(),
        "other_bytes": upper[starts].tobytes(),
    }


def decode_sequence(sections: dict[str, bytes], length: int) -> bytes:
    """The bases :func:`encode_sequence` packed (``length`` of them), case and N included."""
    packed = np.frombuffer(sections["packed"], np.uint8)
    codes = np.stack([(packed >> 6) & 3, (packed >> 4) & 3, (packed >> 2) & 3, packed & 3], axis=1)
    seq = _BASES[codes.ravel()[:length]]
    starts = np.cumsum(np.frombuffer(sections["other_starts"], "<u4").astype(np.int64))
    lengths = np.frombuffer(sections["other_lengths"], "<u4").astype(np.int64)
    if len(starts):  # every position of each run gets the run's byte
        shift = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
        seq[np.arange(lengths.sum()) + shift] = np.repeat(
            np.frombuffer(sections["other_bytes"], np.uint8), lengths)
    toggles = np.cumsum(np.frombuffer(sections["lower"], "<u4").astype(np.int64))
    steps = np.zeros(length + 1, np.int8)  # +1 where lower case starts, -1 where it stops
    steps[toggles[0::2]] = 1
    steps[toggles[1::2]] = -1
    seq[np.cumsum(steps[:length], dtype=np.int8).astype(bool)] |= 0x20
    return seq.tobytes()


SECTIONS = ("packed", "lower", "other_starts", "other_lengths", "other_bytes")


def file_sections(text: bytes) -> tuple[str, list[dict], dict[str, bytes]]:
    """(encoding, records, sections) of one FASTA text: ``2bit`` when the records and their line
    widths rebuild ``text`` byte for byte, else ``raw`` (the text itself)."""
    try:
        records = split_fasta(text)
        headers = [header.decode("utf-8") for header, _, _ in records]
    except (PackError, UnicodeDecodeError):
        return "raw", [], {"raw": text}
    rebuilt = fasta_text(records)
    # blank lines at the very end (several ragout-examples genomes end so) are kept as a count
    blank = len(text) - len(rebuilt)
    if not (text.startswith(rebuilt) and text[len(rebuilt):] == b"\n" * blank):
        return "raw", [], {"raw": text}
    seq = b"".join(s for _, s, _ in records)
    sections = encode_sequence(seq)
    if decode_sequence(sections, len(seq)) != seq:  # cannot happen; the archive must never lie
        raise PackError("internal error: the packed sequence does not decode to the original")
    meta = [{"header": h, "length": len(s), "line_width": w}
            for h, (_, s, w) in zip(headers, records, strict=True)]
    if blank:
        meta[-1]["blank_lines_after"] = blank
    return "2bit", meta, sections


def rebuild_text(entry: dict, sections: dict[str, bytes]) -> bytes:
    """The FASTA text of one file of corpus.json from its sections."""
    if entry["encoding"] == "raw":
        return sections["raw"]
    seq = decode_sequence(sections, sum(r["length"] for r in entry["records"]))
    records, at = [], 0
    for r in entry["records"]:
        records.append((r["header"].encode("utf-8"), seq[at : at + r["length"]], r["line_width"]))
        at += r["length"]
    return fasta_text(records) + b"\n" * entry["records"][-1].get("blank_lines_after", 0)


# ---------------------------------------------------------------- config (as the pipeline reads it)


def load_yaml(path: str | os.PathLike) -> dict:
    import yaml

    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


def stage_options(config: dict, stage: str, schema: str = "pipelines/schema/config.schema.yaml") -> dict:
    """Options of a pipeline stage from ``config``, the schema's defaults filled in as snakemake's
    ``validate`` fills them (so that the commands below equal the rules' commands)."""
    props = load_yaml(schema)["properties"][stage]["properties"]
    given = config.get(stage) or {}
    unknown = sorted(set(given) - set(props))
    if unknown:
        raise PackError(f"{stage}: unknown key(s) {', '.join(unknown)} (see {schema})")
    return {key: given.get(key, prop.get("default")) for key, prop in props.items()}


def run_genomes(config: dict, only: list[str] | None) -> tuple[list[str], list[str], dict[str, tuple]]:
    """(training genomes, held-out genomes, holdout regions) as pipelines/common.smk makes them,
    restricted to ``only`` when given."""
    from genomamba.io.manifest import load_manifest

    manifest = load_manifest(config["manifest"])
    names = list(config["genomes"])
    unknown = [g for g in only or [] if g not in names]
    if unknown:
        raise PackError(f"{', '.join(unknown)}: not among the run's genomes ({', '.join(names)})")
    names = [g for g in names if not only or g in only]
    holdout = {g: manifest.genome(g).holdout for g in names}
    validation_only = stage_options(config, "tokenize")["validation_only"]
    training = [g for g in names if g not in validation_only]
    return training, [g for g in names if holdout[g]], holdout


# ---------------------------------------------------------------- pack (here)


def _plain_name(name: str) -> str:
    for suffix in (".gz", ".bgz", ".xz", ".bz2"):
        name = name.removesuffix(suffix)
    return name.removesuffix(".gbk").removesuffix(".gb") + (".fa" if name.endswith((".gbk", ".gb")) else "")


def source_text(path: Path) -> tuple[bytes, str]:
    """(FASTA text, "fasta" or "genbank") of a fetched file, read with genomamba's readers."""
    from genomamba.io.compression import open_input
    from genomamba.io.genbank import genbank_records, is_genbank

    if not is_genbank(path):
        with open_input(path) as stream:
            return b"".join(stream.blocks()), "fasta"
    with open_input(path) as stream:
        records = [
            (f"{r.name} {r.description}".strip().encode("utf-8"), r.sequence, GENBANK_LINE_WIDTH)
            for r in genbank_records(stream.blocks(), str(path))
            if r.sequence is not None  # the reader skips such records too
        ]
    return fasta_text(records), "genbank"


def pack(config_path: str, genomes_dir: str | None, out: str, only: list[str] | None, log=print) -> dict:
    """Pack the fetched genomes of the run ``config_path`` into ``out`` (corpus.json + corpus.bin.xz),
    atomically. Every source file's sha256 must equal the data manifest's."""
    from genomamba.io.atomic import move_directory_into_place, temporary_directory
    from genomamba.io.compression import sha256_file, sniff_path
    from genomamba.io.manifest import load_manifest

    config = load_yaml(config_path)
    results = f"{config.get('results_dir', 'results')}/{config['run']}"
    genomes_dir = Path(genomes_dir or f"{results}/genomes")
    manifest = load_manifest(config["manifest"])
    names = [g for g in config["genomes"] if not only or g in only]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_directory(out)
    try:
        compressor = lzma.LZMACompressor(format=lzma.FORMAT_XZ, filters=FILTERS)
        digest, offset, entries = hashlib.sha256(), 0, {}
        with open(tmp / ARCHIVE, "wb") as handle:
            for genome in names:
                files = []
                for f in manifest.genome(genome).fasta_files():
                    path = genomes_dir / genome / f.name
                    if not path.is_file():
                        raise PackError(f"{path}: missing; fetch it first (snakemake --configfile "
                                        f"{config_path} --config 'stages=[fetch,validate]')")
                    sha = sha256_file(path)
                    if f.sha256 and sha != f.sha256:
                        raise PackError(f"{path}: sha256 {sha}, {config['manifest']} declares {f.sha256}")
                    text, kind = source_text(path)
                    encoding, records, sections = file_sections(text)
                    placed = {}
                    for name, data in sections.items():
                        placed[name] = [offset, len(data)]
                        offset += len(data)
                        chunk = compressor.compress(data)
                        digest.update(chunk)
                        handle.write(chunk)
                    files.append({
                        "source": {"name": f.name, "sha256": sha, "size": path.stat().st_size,
                                   "compression": sniff_path(path), "format": kind},
                        "fasta": {"name": _plain_name(f.name), "sha256": hashlib.sha256(text).hexdigest(),
                                  "size": len(text)},
                        "encoding": encoding, "records": records, "sections": placed,
                    })
                    log(f"{genome}/{f.name}: {len(text):,} bytes of FASTA ({encoding}, "
                        f"{len(records)} records)")
                entries[genome] = {"files": files}
            tail = compressor.flush()
            digest.update(tail)
            handle.write(tail)
            handle.flush()
            os.fsync(handle.fileno())
        index = {
            "format": FORMAT, "version": VERSION,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "config": config_path, "data_manifest": {"path": config["manifest"],
                                                     "sha256": sha256_file(config["manifest"])},
            "archive": {"name": ARCHIVE, "sha256": digest.hexdigest(), "size": (tmp / ARCHIVE).stat().st_size,
                        "uncompressed": offset, "xz": "LZMA2 preset 9e, lc=4 lp=0 pb=0, CRC64"},
            "genomes": entries,
        }
        (tmp / INDEX).write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")
        move_directory_into_place(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return index


# ---------------------------------------------------------------- unpack, tokenize, pretrain-args (device)


def read_index(corpus: str | os.PathLike) -> dict:
    index = json.loads((Path(corpus) / INDEX).read_text(encoding="utf-8"))
    if index.get("format") != FORMAT or index.get("version") != VERSION:
        raise PackError(f"{Path(corpus) / INDEX}: not a {FORMAT} version {VERSION} index")
    return index


def unpacked_files(index: dict, dest: str | os.PathLike, genome: str) -> list[Path]:
    """Paths of ``genome``'s FASTA files under ``dest`` (as unpack writes them), in manifest order."""
    return [Path(dest) / "genomes" / genome / f["fasta"]["name"] for f in index["genomes"][genome]["files"]]


def unpack(corpus: str, dest: str, only: list[str] | None, log=print) -> list[str]:
    """Write each genome's FASTA files to ``dest/genomes/<genome>/`` and check every sha256 (the
    archive's, and each text's against corpus.json). Files already there with the right sha256 are
    kept. Returns the genomes unpacked."""
    index = read_index(corpus)
    names = [g for g in index["genomes"] if not only or g in only]
    missing = sorted(set(only or []) - set(index["genomes"]))
    if missing:
        raise PackError(f"{', '.join(missing)}: not in {Path(corpus) / INDEX}")
    raw = (Path(corpus) / ARCHIVE).read_bytes()
    if hashlib.sha256(raw).hexdigest() != index["archive"]["sha256"]:
        raise PackError(f"{Path(corpus) / ARCHIVE}: sha256 differs from {INDEX}'s: the archive is "
                        "damaged or from another pack; pack again")
    data = lzma.decompress(raw)
    del raw
    for genome in names:
        files = index["genomes"][genome]["files"]
        for entry, path in zip(files, unpacked_files(index, dest, genome), strict=True):
            want = entry["fasta"]["sha256"]
            if path.is_file() and path.stat().st_size == entry["fasta"]["size"] and _sha256(path) == want:
                continue
            sections = {k: data[a : a + n] for k, (a, n) in entry["sections"].items()}
            text = rebuild_text(entry, sections)
            got = hashlib.sha256(text).hexdigest()
            if got != want:
                raise PackError(f"{genome}/{entry['fasta']['name']}: unpacked sha256 {got}, {INDEX} declares "
                                f"{want}: the archive does not hold the declared sequence")
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
            tmp.write_bytes(text)
            os.replace(tmp, path)
        log(f"unpacked {genome}: {sum(f['fasta']['size'] for f in index['genomes'][genome]['files']):,} "
            "bytes of FASTA, sha256 checked")
    return names


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def tokenize_commands(config_path: str, corpus: str, dest: str, only: list[str] | None) -> list[tuple]:
    """(output directory, argv) of every `genomamba tokenize` call the pipeline's tokenize_genome
    and tokenize_heldout rules make, on the unpacked files under ``dest``."""
    config = load_yaml(config_path)
    index = read_index(corpus)
    opts = stage_options(config, "tokenize")
    training, heldout, holdout = run_genomes(config, only)
    common = ["--window", str(opts["window"]), "--stride", str(opts["stride"] or opts["window"]),
              "--last-window", str(opts["last_window"]), "--max-n-fraction", str(opts["max_n_fraction"])]
    jobs = []
    stages = (("tokens", training, "--exclude-region"), ("heldout_tokens", heldout, "--region"))
    for folder, genomes, flag in stages:
        for genome in genomes:
            out = Path(dest) / folder / genome
            regions = [a for r in holdout[genome] for a in (flag, r)]
            argv = ["genomamba", "tokenize", *map(str, unpacked_files(index, dest, genome)), "-o", str(out),
                    *common, *regions, *shlex.split(opts["extra_args"])]
            jobs.append((out, argv))
    return jobs


def tokenize(config_path: str, corpus: str, dest: str, only: list[str] | None, jobs: int, log=print) -> None:
    """Run :func:`tokenize_commands`, ``jobs`` at a time, each logged to dest/logs/tokenize/."""
    pending = tokenize_commands(config_path, corpus, dest, only)
    running: list[tuple] = []
    failed = []
    while pending or running:
        while pending and len(running) < jobs:
            out, argv = pending.pop(0)
            kind = "" if out.parent.name == "tokens" else ".heldout"  # the pipeline's log names
            log_path = Path(dest) / "logs" / "tokenize" / f"{out.name}{kind}.log"
            log_path.parent.mkdir(parents=True, exist_ok=True)
            log("$ " + shlex.join(argv))
            handle = open(log_path, "w")  # noqa: SIM115 - closed when the process ends
            process = subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT)
            running.append((process, handle, log_path))
        time.sleep(0.05)
        for item in [r for r in running if r[0].poll() is not None]:
            running.remove(item)
            item[1].close()
            if item[0].returncode != 0:
                failed.append(item[2])
                log(item[2].read_text(encoding="utf-8", errors="replace"))
    if failed:
        raise PackError(f"genomamba tokenize failed: {', '.join(map(str, failed))}")


def pretrain_args(config_path: str, dest: str, only: list[str] | None) -> list[str]:
    """The options of pipelines/pretrain.smk's `genomamba pretrain` (without --out, --resume and
    --threads, which belong to the job) for the shards under ``dest``."""
    config = load_yaml(config_path)
    opts = stage_options(config, "pretrain")
    training, heldout, _ = run_genomes(config, only)
    args = [a for g in training for a in ("--data", str(Path(dest) / "tokens" / g))]
    if opts["validation"]:
        args += [a for g in heldout for a in ("--val-data", str(Path(dest) / "heldout_tokens" / g))]
    args += [a for n in opts["val_seq_lens"] for a in ("--val-seq-len", str(n))]
    args += ["--preset", opts["preset"], "--max-steps", str(opts["max_steps"]),
             "--seq-len", str(opts["seq_len"]), "--batch-size", str(opts["batch_size"]),
             "--seed", str(opts["seed"]), *shlex.split(opts["extra_args"])]
    return args


# ---------------------------------------------------------------- take-back (here)


def take_back(returned: str, run_dir: str, history: str, log=print) -> int:
    """Copy what a device call returned (its $OUT: run_config.json, metrics.jsonl, val_metrics.jsonl,
    checkpoints/step-N/, or model/ after the last job; job.log) into ``run_dir`` for the next call.

    The checkpoint is checked file by file against its manifest first. The metrics files are
    carried xz-compressed (the device job decompresses them). The run directory this replaces is
    kept as ``history/previous-run`` (outside .carry/, so that it is not carried); job.log goes to
    ``history/job-step-N.log`` and the newest metrics, plain, to ``history/``. Returns the step that
    came back.
    """
    from genomamba.train.state_files import check_state_files

    returned, run_dir, history = Path(returned), Path(run_dir), Path(history)
    missing = [f for f in RUN_FILES[:2] if not (returned / f).is_file()]
    if missing:
        raise PackError(f"{returned}: {', '.join(missing)} did not come back; keep {run_dir} as it is "
                        "and look at the call's output")
    steps = sorted((returned / "checkpoints").glob("step-*"))
    model = returned / "model"
    if len(steps) > 1 or not (steps or model.is_dir()):
        raise PackError(f"{returned}: expected one checkpoints/step-N/ (or model/ after the last job), "
                        f"found {[s.name for s in steps]}")
    for step_dir in steps:
        check_state_files(step_dir)  # a part cut short or missing fails here, before anything moves
    step = _last_step(returned / "metrics.jsonl")
    if steps and int(steps[0].name.removeprefix("step-")) != step:
        raise PackError(f"{returned}: metrics.jsonl ends at step {step}, the checkpoint is {steps[0].name}")
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = run_dir.with_name(f".{run_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        for name in RUN_FILES:
            if not (returned / name).is_file():
                continue
            if name.endswith(".jsonl"):  # xz: 5 MB of metrics for 16,000 steps carry as 1 MB
                (tmp / f"{name}.xz").write_bytes(lzma.compress((returned / name).read_bytes()))
            else:
                shutil.copyfile(returned / name, tmp / name)
        for folder in [*steps, *([model] if model.is_dir() else [])]:
            target = tmp / folder.relative_to(returned)
            target.mkdir(parents=True)
            for f in folder.iterdir():
                shutil.copyfile(f, target / f.name)
        history.mkdir(parents=True, exist_ok=True)
        if (returned / "job.log").is_file():
            shutil.copyfile(returned / "job.log", history / f"job-step-{step:06d}.log")
        for name in RUN_FILES[1:]:  # the newest curves, plain, to read here
            if (returned / name).is_file():
                shutil.copyfile(returned / name, history / name)
        previous = history / "previous-run"
        shutil.rmtree(previous, ignore_errors=True)
        if run_dir.exists():
            shutil.move(run_dir, previous)
        os.replace(tmp, run_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log(f"{run_dir}: step {step}" + (" (finished: model/ came back)" if model.is_dir() else "")
        + f"; the run before it: {history / 'previous-run'}")
    return step


def travel_mib(carry: str = ".carry") -> float:
    """MiB that a device call carrying ``carry`` sends: the working tree (tracked and untracked,
    not ignored files, as git lists them) plus every file under ``carry``. The limit is 64 MiB."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            capture_output=True, check=True).stdout.split(b"\0")
    tree = sum(os.path.getsize(p) for p in listed if p and os.path.isfile(p))
    carried = sum(p.stat().st_size for p in Path(carry).rglob("*") if p.is_file())
    return (tree + carried) / 2**20


def _last_step(path: Path) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    steps = [json.loads(line)["step"] for line in lines if line.strip()]
    if steps != list(range(1, len(steps) + 1)):
        raise PackError(f"{path}: steps are not 1, 2, ... {len(steps)} without gaps")
    return steps[-1] if steps else 0


# ---------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="fetched genomes -> corpus.json + corpus.bin.xz (here)")
    p.add_argument("--config", default="config/pretrain_corpus.yaml")
    p.add_argument("--genomes-dir", help="default: <results_dir>/<run>/genomes of the config")
    p.add_argument("-o", "--out", default=".carry/corpus")
    for name, text in (("unpack", "archive -> DEST/genomes (device)"), ("tokenize", "DEST/genomes -> shards"),
                       ("pretrain-args", "the pretrain options, one a line")):
        q = sub.add_parser(name, help=text)
        q.add_argument("--config", default="config/pretrain_corpus.yaml")
        q.add_argument("--corpus", default=".carry/corpus")
        q.add_argument("--dest", required=True, help="where genomes/, tokens/, heldout_tokens/ go")
        if name == "tokenize":
            q.add_argument("--jobs", type=int, default=1)
    for q in [p, *(sub.choices[n] for n in ("unpack", "tokenize", "pretrain-args"))]:
        q.add_argument("--genome", action="append", help="only this genome (repeatable; default: all)")
    t = sub.add_parser("take-back", help="a device call's returned files -> .carry/run (here)")
    t.add_argument("returned", help="the call's files_at folder")
    t.add_argument("--run", default=".carry/run")
    t.add_argument("--history", default="results/pretrain_corpus/device_jobs")
    args = parser.parse_args(argv)
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    try:
        if args.command == "pack":
            index = pack(args.config, args.genomes_dir, args.out, args.genome, log)
            log(f"{args.out}/{ARCHIVE}: {index['archive']['size']:,} bytes "
                f"({index['archive']['uncompressed']:,} uncompressed)")
        elif args.command == "unpack":
            unpack(args.corpus, args.dest, args.genome, log)
        elif args.command == "tokenize":
            tokenize(args.config, args.corpus, args.dest, args.genome, args.jobs, log)
        elif args.command == "pretrain-args":
            print("\n".join(pretrain_args(args.config, args.dest, args.genome)))
        else:
            take_back(args.returned, args.run, args.history, log)
        if args.command in ("pack", "take-back"):
            carry = Path(args.out if args.command == "pack" else args.run).parent
            size = travel_mib(str(carry))
            log(f"a call carrying {carry} sends {size:.1f} MiB (limit 64)" + (
                "; TOO MUCH: see docs/pretraining.md, device jobs" if size > 64 else ""))
    except PackError as exc:
        log(f"error: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
