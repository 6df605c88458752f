"""``genomamba score-variants``: zero-shot scores of single-base substitutions by a masked-LM.

For every SNV of a VCF the pretrained model reads ``window`` bases of the genome around it, with
the variant's own base masked, and gives the probabilities of A, C, G and T there (a softmax over
those four). The score is the log-likelihood ratio

    llr = log P(alt | context) - log P(ref | context)

(natural log): negative when the model finds the alternative allele less likely than the
reference, the usual zero-shot reading of a DNA language model (the larger |llr|, the stronger the
predicted effect). PH models are read as evaluation reads them, conjoined over both strands
(model.GenomambaModel.forward), so a variant scores the same from either strand; PS models are so
by construction.

The window is centred on the variant and shifted inward at a chromosome's ends, so that it keeps
its full length wherever the chromosome is long enough. All ALT alleles of a VCF line share one
forward pass (the masked context is the same). Alleles that are not SNVs (indels, multi-base
substitutions, symbolic, missing, ambiguous: genomamba.io.vcf.allele_kind) are left out and
counted in one warning. ``--region`` instead of a VCF scores every substitution of every position
of a region (in silico saturation mutagenesis: three rows per position, id ``.``).

Columns: ``chrom``, ``pos`` (1-based, as in the VCF), ``id``, ``ref``, ``alt``, ``window_start``,
``window_end`` (0-based, half-open), ``n_bases`` (N in the window), ``log_p_ref``, ``log_p_alt``,
``llr``. Written as embed and predict write their tables (tables.streaming_table: Parquet with the
model's weights digest and the options, TSV, CSV; a failed run leaves no output). An output named
``.vcf``, ``.vcf.gz`` or ``.bcf`` is instead the input VCF with the scores in INFO fields
(:data:`VCF_FIELDS`, written by genomamba.io.vcf_output through pysam): every record kept, a
multi-allelic line's values per ALT allele, ``.`` for an allele that is not an SNV. Under
``torchrun`` the batches of sites are shared among the processes and rank 0 writes the one output
(genomamba.infer.sharding).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from genomamba.alphabet import ACGT_IDS, MASK_ID, N_ID, InvalidCharacterError, encode
from genomamba.errors import InputDataError
from genomamba.infer.model_inputs import batches
from genomamba.infer.runner import ROWS_PER_CHUNK, load_model, output_provenance
from genomamba.infer.sharding import ShardedRun, sharded_run
from genomamba.infer.tables import check_outputs_are_not_inputs, require_table, streaming_table
from genomamba.io.records import ReadAsNTally, invalid_character_message
from genomamba.io.regions import parse_region
from genomamba.io.vcf import LeftOutTally, Variant, allele_kind, read_vcf
from genomamba.io.vcf_output import InfoField, annotated_vcf, require_pysam, vcf_mode
from genomamba.runtime.batching import pad_batch
from genomamba.runtime.log import stderr_log
from genomamba.runtime.precision import autocast_for
from genomamba.tasks.mutagenesis import saturation_alleles

COLUMNS = ("chrom", "pos", "id", "ref", "alt", "window_start", "window_end", "n_bases", "log_p_ref",
           "log_p_alt", "llr")
#: The data-line index of each row's VCF record (genomamba.io.vcf.Variant.record), beside COLUMNS
#: while rows are made: what a VCF output writes them back onto.
_RECORD = "record"
_BY = "genomamba score-variants (masked-LM, natural log)"
#: The INFO fields of a VCF output, each from the table column of the same meaning.
VCF_FIELDS = (
    InfoField("GM_LLR", "A", "Float", f"{_BY}: log P(alt) - log P(ref) at the masked variant", "llr"),
    InfoField("GM_LOG_P_ALT", "A", "Float", f"{_BY}: log P(alt), softmax over A, C, G, T", "log_p_alt"),
    InfoField("GM_LOG_P_REF", "1", "Float", f"{_BY}: log P(ref), softmax over A, C, G, T", "log_p_ref"),
    InfoField("GM_WINDOW_START", "1", "Integer", f"{_BY}: 0-based start of the window read", "window_start"),
    InfoField("GM_WINDOW_END", "1", "Integer", f"{_BY}: end of the window read (exclusive)", "window_end"),
    InfoField("GM_N_BASES", "1", "Integer", f"{_BY}: bases read as N in that window", "n_bases"),
)
_BASE_INDEX = {base: i for i, base in enumerate("ACGT")}
LOG = logging.getLogger("genomamba.infer")


@dataclass
class _Site:
    """One VCF line's scorable alleles and the masked window read for them."""

    alleles: list[Variant]
    start: int
    end: int
    ids: np.ndarray  # the window's token ids with the variant's base masked

    @property
    def offset(self) -> int:
        return self.alleles[0].position - self.start


def centred_window(position: int, length: int, window: int) -> tuple[int, int]:
    """[start, end) of ``window`` bases around 0-based ``position`` on a sequence of ``length``:
    centred, shifted inward at the ends, shorter only when the sequence is."""
    start = max(0, min(position - window // 2, length - window))
    return start, min(length, start + window)


def score_variants(
    model_dir: str | os.PathLike,
    vcf: str | os.PathLike | None,
    genome: str | os.PathLike,
    out: str | os.PathLike,
    *,
    regions: Sequence[str] = (),
    window: int = 1024,
    batch_size: int = 16,
    device: str = "auto",
    lenient: bool = False,
    progress: Callable[[int], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Score every SNV of ``vcf`` on ``genome`` with the masked-LM in ``model_dir``; write ``out``.

    ``regions`` instead of ``vcf``: every substitution of every position of these regions
    (``CHROM:START-END``, 1-based inclusive, or ``CHROM``; genomamba.tasks.mutagenesis), region by
    region. ``progress`` is called with the number of alleles of every batch scored.

    Returns:
        ``{"out", "rows", "left_out"}`` (left_out: alleles left out, by kind).

    Raises:
        InputDataError: a model without a masked-LM head; what genomamba.io.vcf rejects (file,
            line, what is wrong); a genome base that is not DNA; no SNV at all. Nothing is written.
        ModelDirectoryError, UnavailableError: see :func:`genomamba.infer.runner.load_model`.
        ValueError: an unknown output suffix (or a track), a window below 1, not exactly one of
            a VCF and regions, a malformed region, a VCF output without a VCF input.
        UnavailableError: a VCF output without pysam installed.
        RankFailedError: under torchrun, another process failed (:mod:`genomamba.infer.sharding`).
    """
    from genomamba.model_directory import read_config

    log = log or stderr_log
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    if (vcf is None) == (not regions):
        raise ValueError("give a VCF, or regions to mutate (--region), not both")
    for region in regions:  # a malformed one fails before any work
        parse_region(region)
    vcf_out = vcf_mode(out) is not None
    if not vcf_out:
        require_table(out, "variant scores are a table (or a .vcf/.vcf.gz/.bcf)")
    elif vcf is None:
        raise ValueError(f"{out}: a VCF output is the input VCF with scores added; with --region write "
                         ".parquet, .tsv or .csv")
    else:
        require_pysam()
    check_outputs_are_not_inputs((out,), (vcf, genome))
    task = read_config(model_dir)["architecture"]["head"]["task"]
    if task != "mlm":
        raise InputDataError(f"{model_dir}: the model has a {task!r} head; variant scores need the "
                             "masked-language model that genomamba pretrain writes")
    with sharded_run(device, out) as run:  # one process, or this one's share under torchrun
        return _score(run, model_dir, vcf, genome, out, regions=regions, window=window, batch_size=batch_size,
                      lenient=lenient, progress=progress, log=log, vcf_out=vcf_out)


def _score(run: ShardedRun, model_dir, vcf, genome, out, *, regions, window, batch_size, lenient, progress,
           log, vcf_out) -> dict:
    """:func:`score_variants` once its options are checked, as this process of ``run``: rank 0 (or
    the only process) writes ``out``; the others score their share of the batches."""
    from genomamba.io.indexed import IndexedFasta

    model, device_t = load_model(model_dir, run.device)
    if model.config.max_length is not None and window > model.config.max_length:
        LOG.warning("--window %d is longer than the %d bases the model is sized for (memory grows with "
                    "the length)", window, model.config.max_length)
    source = str(vcf) if vcf is not None else ", ".join(regions)
    options = {"command": "score-variants", "vcf": None if vcf is None else str(vcf),
               "regions": list(regions), "genome": str(genome), "window": window, "lenient": lenient}
    left_out, tally, rows = LeftOutTally(), ReadAsNTally(), 0
    provenance = output_provenance(model_dir, options) if run.is_main else None
    with IndexedFasta(genome) as fasta, (
        contextlib.nullcontext(None) if not run.is_main  # rank 0 alone writes
        else annotated_vcf(vcf, out, VCF_FIELDS, lengths=fasta.lengths, meta=[_vcf_meta(provenance)])
        if vcf_out else streaming_table(out, provenance)
    ) as write:
        alleles = (read_vcf(vcf, fasta) if vcf is not None
                   else (site for region in regions for site in saturation_alleles(fasta, region)))
        sites = _sites(alleles, fasta, genome, window, lenient, left_out, tally)
        for frame in _scored_frames(model, sites, batch_size, device_t, progress, run):
            write(frame if vcf_out else frame.drop(columns=_RECORD))
            rows += len(frame)
        if rows == 0 and run.is_main:
            raise InputDataError(f"{source}: no single-base substitution to score"
                                 + (f" (left out: {left_out.text()})" if left_out.kinds else ""))
    tally.warn(f"{genome} (windows around the variants of {source})", "windows")
    if left_out.kinds:
        LOG.warning("%s: %d allele(s) left out, not single-base substitutions: %s", source,
                    sum(left_out.kinds.values()), left_out.text())
    log(f"score-variants: {rows} SNV scores written to {out}")
    return {"out": str(out), "rows": rows, "left_out": dict(left_out.kinds)}


def _vcf_meta(provenance: dict) -> str:
    """The header line saying how a VCF output's scores were made (``##genomamba_score_variants=...``)."""
    options = provenance["options"]
    made = {"version": provenance["genomamba_version"], "model": provenance["model"],
            "model_weights_sha256": provenance["model_weights_sha256"], "genome": options["genome"],
            "window": options["window"], "lenient": options["lenient"]}
    return "##genomamba_score_variants=" + ";".join(f"{key}={value}" for key, value in made.items())


def _sites(lines: Iterator[list[Variant]], fasta, genome, window: int, lenient: bool, left_out: LeftOutTally,
           tally: ReadAsNTally) -> Iterator[_Site]:
    """The masked window of every VCF line with at least one SNV allele (the others are tallied)."""
    for alleles in lines:
        scorable = []
        for variant in alleles:
            kind = allele_kind(variant.ref, variant.alt)
            if kind == "snv":
                scorable.append(variant)
            else:
                left_out.add(kind)
        if not scorable:
            continue
        first = scorable[0]
        start, end = centred_window(first.position, fasta.lengths[first.chrom], window)
        try:
            ids, _, stats = encode(fasta.fetch(first.chrom, start, end), lenient=lenient)
        except InvalidCharacterError as exc:
            position = f"{first.chrom}:{start + exc.offset + 1}"
            raise InputDataError(f"{genome}: {position} (window of {first.where}): "
                                 f"{invalid_character_message(exc.byte)}") from None
        tally.add(stats)
        ids[first.position - start] = MASK_ID
        yield _Site(scorable, start, end, ids)


def _scored_frames(model, sites: Iterator[_Site], batch_size: int, device: torch.device,
                   progress: Callable[[int], None] | None, run: ShardedRun) -> Iterator[pd.DataFrame]:
    """Frames of about ROWS_PER_CHUNK rows (COLUMNS and _RECORD), in VCF order: this process scores
    the batches of its shard; rank 0 (or the only process) gets every frame, the others none."""
    skipped = None if progress is None else (lambda batch: progress(sum(len(s.alleles) for s in batch)))
    scored = (_score_batch(model, batch, device, progress)
              for batch in run.shard.take(batches(sites, batch_size), skipped))
    rows: list[tuple] = []
    for batch_rows in run.gather(scored, rows=len, chunk_rows=ROWS_PER_CHUNK):
        rows.extend(batch_rows)
        if len(rows) >= ROWS_PER_CHUNK:
            yield pd.DataFrame(rows, columns=[*COLUMNS, _RECORD])
            rows = []
    if rows:
        yield pd.DataFrame(rows, columns=[*COLUMNS, _RECORD])


def _score_batch(model, batch: list[_Site], device: torch.device, progress) -> list[tuple]:
    """One forward pass: the rows of every allele of the batch's sites."""
    ids, mask = pad_batch([site.ids for site in batch], device)
    offsets = torch.tensor([site.offset for site in batch], device=device)
    with torch.inference_mode(), autocast_for(device):
        logits = model.predict(ids, mask).logits
    at_variant = logits[torch.arange(len(batch), device=device), offsets].float()
    log_p = torch.log_softmax(at_variant[:, torch.as_tensor(ACGT_IDS, device=device).long()], dim=-1)
    log_p = log_p.cpu().numpy().astype(np.float64)
    rows = []
    for site, lp in zip(batch, log_p, strict=True):
        n_bases = int(np.count_nonzero(site.ids == N_ID))
        for v in site.alleles:
            ref, alt = lp[_BASE_INDEX[v.ref]], lp[_BASE_INDEX[v.alt]]
            rows.append((v.chrom, v.position + 1, v.id, v.ref, v.alt, site.start, site.end, n_bases,
                         float(ref), float(alt), float(alt - ref), v.record))
    if progress is not None:
        progress(sum(len(site.alleles) for site in batch))
    return rows
