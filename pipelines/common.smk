# Helpers shared by the stage files: the manifest and the paths of each genome's fetched files.
# (Functions only, no rules: keeps `snakemake --lint` quiet about mixing the two.)
import shlex
from pathlib import Path

from genomamba.io.manifest import load_manifest

MANIFEST = load_manifest(config["manifest"])
# Fails at parse time, naming the manifest and its genomes, when config names an unknown genome.
GENOMES = {name: MANIFEST.genome(name) for name in config["genomes"]}


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
    """The genomes an embed/predict stage runs on: its `genomes` option, or all of the run's."""
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
