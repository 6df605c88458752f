# Helpers shared by the stage files: the manifest and the paths of each genome's fetched files.
# (Functions only, no rules: keeps `snakemake --lint` quiet about mixing the two.)
import re
import shlex
from pathlib import Path

from genomamba.io.manifest import load_manifest

MANIFEST = load_manifest(config["manifest"])
# Fails at parse time, naming the manifest and its genomes, when config names an unknown genome.
GENOMES = {name: MANIFEST.genome(name) for name in config["genomes"]}


# Genomes whose shards pretraining reads; the others are held out whole (validation only).
VALIDATION_ONLY = config["tokenize"]["validation_only"]
for _name in VALIDATION_ONLY:
    if _name not in GENOMES or not GENOMES[_name].holdout:
        raise ValueError(f"tokenize.validation_only: {_name!r} is not a run genome with a manifest holdout")
TRAINING_GENOMES = [name for name in GENOMES if name not in VALIDATION_ONLY]
HELDOUT_GENOMES = [name for name in GENOMES if GENOMES[name].holdout]


def holdout_args(flag):
    """Params function: `flag` (--region or --exclude-region) with each holdout region of the genome."""
    return lambda wildcards: " ".join(f"{flag} {shlex.quote(r)}" for r in GENOMES[wildcards.genome].holdout)


def genome_files(genome, role=None):
    """Paths of the fetched files of `genome` (only those with `role`, e.g. "fasta", if given)."""
    files = GENOMES[genome].files
    return [f"{RESULTS}/genomes/{genome}/{f.name}" for f in files if role in (None, f.role)]


def fasta_files(wildcards):
    return genome_files(wildcards.genome, "fasta")


def fetch_dir(wildcards, output):
    """DIR of `genomamba fetch -o DIR`, which writes DIR/<genome>/<file>."""
    return str(Path(output[0]).parent.parent)


def applied_genomes(options):
    """The genomes an embed/predict/variants stage runs on: its `genomes` option, or all of the run's."""
    chosen = options["genomes"] or list(GENOMES)
    unknown = [g for g in chosen if g not in GENOMES]
    if unknown:
        raise ValueError(f"{', '.join(unknown)}: not among the run's genomes ({', '.join(GENOMES)})")
    return chosen


def window_args(options):
    """The windowing options of `genomamba embed`/`predict` from a stage's config."""
    stride = f" --stride {options['stride']}" if options["stride"] else ""
    return f"--window {options['window']}{stride} --last {options['last_window']}"


def track_args(options, output):
    """`--track-out` (and `--track`) of `genomamba predict` when the stage writes a bedGraph track:
    `track: true` takes the model's only score, a string names the column."""
    if not options["track"]:
        return ""
    column = "" if options["track"] is True else f" --track {shlex.quote(options['track'])}"
    return f"--track-out {shlex.quote(output.track)}{column}"


def vcf_stem(name):
    """A VCF's file name without .vcf, .vcf.gz or .vcf.bgz: the name of its scores table."""
    return re.sub(r"\.vcf(\.b?gz)?$", "", name)


def variant_sets():
    """(genome, VCF file stem) of every VCF the stage scores; a named genome without one is an error."""
    chosen = applied_genomes(config["variants"])
    sets = [(g, vcf_stem(Path(p).name)) for g in chosen for p in genome_files(g, "variants")]
    if config["variants"]["genomes"]:
        missing = [g for g in chosen if not genome_files(g, "variants")]
        if missing:
            raise ValueError(
                f"variants.genomes: {', '.join(missing)} have no VCF (role: variants) in the manifest"
            )
    return sets


def variants_vcf(wildcards):
    (path,) = [
        p for p in genome_files(wildcards.genome, "variants") if vcf_stem(Path(p).name) == wildcards.vcf
    ]
    return path


def single_fasta(wildcards):
    """score-variants reads one indexed genome FASTA: a genome of several FASTA files cannot be used."""
    files = genome_files(wildcards.genome, "fasta")
    if len(files) != 1:
        raise ValueError(
            f"variants: genome {wildcards.genome!r} has {len(files)} FASTA files; "
            "score-variants needs the genome in one (plain or BGZF) FASTA"
        )
    return files[0]


BENCHMARK = config["benchmark"]


def benchmark_model(wildcards):
    """The model of the benchmark's finetune:model and probe methods: none, the pretrain stage's, or a path."""
    model = BENCHMARK["model"]
    if model is None:
        return []
    return f"{RESULTS}/pretrain/model" if model == "pretrain" else model


COMPUTE = config["compute"]
# threads and cluster resources: model steps, and light steps (see compute: in the schema)
MODEL_THREADS = COMPUTE["threads"]
MODEL_RESOURCES = {"mem_mb": COMPUTE["mem_mb"], "runtime": COMPUTE["runtime"], "gpu": COMPUTE["gpus"]}
# evaluate and benchmark run in one process: one GPU at most, whatever compute.gpus says
ONE_GPU_RESOURCES = {**MODEL_RESOURCES, "gpu": min(COMPUTE["gpus"], 1)}


def data_parallel_launcher(gpus):
    """How a model rule that can run data-parallel (pretrain, finetune, embed, predict,
    score_variants) starts genomamba: itself, or under torchrun with one process per GPU of the
    job's node when the run asks for several (each process takes cuda:LOCAL_RANK)."""
    if gpus > 1:
        return f'torchrun --standalone --nproc-per-node {gpus} "$(command -v genomamba)"'
    return "genomamba"


GENOMAMBA_DATA_PARALLEL = data_parallel_launcher(COMPUTE["gpus"])
LIGHT_RESOURCES = {"mem_mb": COMPUTE["light_mem_mb"], "runtime": 60}
