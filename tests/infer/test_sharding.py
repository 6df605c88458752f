"""Inference on several processes: which units are whose, the merge order, and 2 CPU processes
(gloo, launched by the real torchrun) writing exactly the outputs of 1 process.

Exactness: the 2-process run computes the same batches as the 1-process run (batch b on rank b % 2;
with ``--context record`` record i on rank i % 2), on the CPU with one thread in both, so values are
compared bit for bit (``check_exact``), and a Parquet file's provenance must be the same too.
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from genomamba.cli import main
from genomamba.errors import EXIT_DATA
from genomamba.infer.sharding import PartWriter, Shard, interleaved, rank_units, sharded_run
from genomamba.infer.tables import read_provenance
from tests.infer.infer_cases import BINARY_HEAD, save_model
from tests.torchrun_cases import genomamba_script, torchrun

torchrun_needed = pytest.mark.skipif(
    not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
    reason="torch.distributed with gloo is not available",
)


# -- which units are whose, and the merge order (pure) ----------------------------------------------

def test_unit_u_belongs_to_rank_u_modulo_the_world_and_the_others_are_reported_skipped():
    skipped: list[int] = []
    assert list(Shard(1, 3).take(range(10), skipped.append)) == [1, 4, 7]
    assert skipped == [0, 2, 3, 5, 6, 8, 9]
    assert list(Shard().take("abc")) == ["a", "b", "c"]
    assert [Shard(2, 3).mine(u) for u in range(6)] == [False, False, True, False, False, True]


@pytest.mark.parametrize("world", [1, 2, 3, 5])
def test_interleaving_the_ranks_shares_gives_back_the_one_process_order(world):
    for n in range(12):
        units = [f"unit{i}" for i in range(n)]
        shares = [list(Shard(rank, world).take(units)) for rank in range(world)]
        assert list(interleaved(shares)) == units


def test_ranks_out_of_step_are_an_error_not_a_shorter_output():
    with pytest.raises(RuntimeError, match="cut different work"):
        list(interleaved([[0, 2], [1], [5, 6]]))  # rank 2 has two units where it should have at most one


def test_parts_are_read_back_in_order_over_several_files_and_removed_once_read(tmp_path):
    """A rank's units go to files of at least rows_per_part rows; reading them back gives the units
    in order, whatever the file boundaries, and deletes each file after reading it."""
    for rank, sizes in enumerate([(3, 1, 4, 1, 5), (9, 2, 6, 5)]):
        units = [np.arange(n) for n in sizes]
        parts = PartWriter(tmp_path, rank, rows_per_part=4)
        for unit in units:
            parts.add(unit, len(unit))
        parts.flush()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "rank00000-000000.pkl", "rank00000-000001.pkl", "rank00000-000002.pkl",
        "rank00001-000000.pkl", "rank00001-000001.pkl", "rank00001-000002.pkl",
    ]  # rank 0: (3, 1) (4) (1, 5); rank 1: (9) (2, 6) (5)
    merged = list(interleaved([rank_units(tmp_path, 0), rank_units(tmp_path, 1)]))
    assert [len(u) for u in merged] == [3, 9, 1, 2, 4, 6, 1, 5, 5]
    assert list(tmp_path.iterdir()) == []


def test_one_process_passes_its_units_through_lazily_and_keeps_the_device_option(monkeypatch, tmp_path):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    drawn: list[int] = []

    def units():
        for i in range(3):
            drawn.append(i)
            yield i

    with sharded_run("cpu", tmp_path / "out.tsv") as run:
        assert (run.shard, run.device, run.is_main) == (Shard(0, 1), "cpu", True)
        gathered = run.gather(units(), rows=lambda unit: 1, chunk_rows=16)
        assert drawn == [] and next(gathered) == 0 and drawn == [0]
        assert list(gathered) == [1, 2]
    assert list(tmp_path.iterdir()) == []  # no parts folder for one process


def test_commands_that_do_not_share_their_work_refuse_torchrun_before_any_work(monkeypatch, tmp_path):
    from genomamba import api
    from genomamba.errors import UsageError
    from genomamba.infer.sharding import is_main_process

    world = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "MASTER_ADDR": "127.0.0.1",
             "MASTER_PORT": "1"}
    for key, value in world.items():
        monkeypatch.setenv(key, value)
    assert not is_main_process()
    with pytest.raises(UsageError, match="embed --per-base runs on one process"):
        api.embed_per_base(tmp_path / "no_model", [tmp_path / "no.fa"], tmp_path / "out")
    with pytest.raises(UsageError, match="track runs on one process"):
        api.track(tmp_path / "no_model", [tmp_path / "no.fa"], tmp_path / "out.bw")
    assert list(tmp_path.iterdir()) == []


# -- 2 processes under torchrun against 1 process --------------------------------------------------







def _one_process(*args) -> None:
    """The same command in this process, with one CPU thread like each torchrun process."""
    threads = torch.get_num_threads()
    try:
        result = CliRunner().invoke(main, [str(a) for a in args] + ["--threads", "1"])
    finally:
        torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output


def _two_processes(tmp: Path, *args) -> subprocess.CompletedProcess:
    result = torchrun(genomamba_script(tmp), *[str(a) for a in args], "--threads", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _only(folder: Path, *names: str) -> None:
    """``folder`` holds exactly ``names``: no parts folder, temporary or lock left behind."""
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sharding_models")
    save_model(root / "binary", rc_strategy="ph", head=BINARY_HEAD)
    save_model(root / "mlm", rc_strategy="ph")
    return root


@torchrun_needed
@pytest.mark.slow  # a torchrun launch of two processes
def test_embed_on_two_processes_writes_the_one_process_table(tmp_path, models, demo_data):
    """Window context, batches of 3 windows dealt alternately to the ranks: 69 rows, Parquet."""
    args = [models / "binary", demo_data / "lambda_virus.fa", "--window", 1000, "--stride", 700,
            "--batch-size", 3, "--device", "cpu"]
    _one_process("embed", *args, "-o", tmp_path / "one" / "emb.parquet")
    result = _two_processes(tmp_path, "embed", *args, "-o", tmp_path / "two" / "emb.parquet")
    one, two = (pd.read_parquet(tmp_path / run / "emb.parquet") for run in ("one", "two"))
    assert len(one) == 69
    pd.testing.assert_frame_equal(two, one, check_exact=True)
    assert read_provenance(tmp_path / "two" / "emb.parquet") == read_provenance(
        tmp_path / "one" / "emb.parquet")
    _only(tmp_path / "two", "emb.parquet")
    assert result.stderr.count("embed: 69 embeddings") == 1  # rank 0 alone logs


@torchrun_needed
@pytest.mark.slow  # a torchrun launch of two processes
def test_predict_in_record_context_on_two_processes_writes_the_one_process_table_and_track(tmp_path, models,
                                                                                           demo_data):
    """``--context record``: 5 records dealt alternately to the ranks; a CSV and a bigWig track."""
    pytest.importorskip("pyBigWig")
    from genomamba.alphabet import decode
    from genomamba.io.fasta import read_fasta

    (record,) = list(read_fasta(demo_data / "lambda_virus.fa", softmask=False))
    fasta = tmp_path / "pieces.fa"
    fasta.write_text("".join(f">piece{i}\n{decode(record.ids[8000 * i:8000 * i + 1500 + 700 * i]).decode()}\n"
                             for i in range(5)))
    args = ["predict", models / "binary", fasta, "--window", 400, "--context", "record", "--device", "cpu"]
    for run in ("one", "two"):
        (tmp_path / run).mkdir()
    _one_process(*args, "-o", tmp_path / "one" / "pred.csv", "--track-out", tmp_path / "one" / "pred.bw")
    _two_processes(tmp_path, *args, "-o", tmp_path / "two" / "pred.csv", "--track-out",
                   tmp_path / "two" / "pred.bw")
    one, two = (pd.read_csv(tmp_path / run / "pred.csv") for run in ("one", "two"))
    assert len(one) == sum(-(-(1500 + 700 * i) // 400) for i in range(5))
    pd.testing.assert_frame_equal(two, one, check_exact=True)
    assert (tmp_path / "two" / "pred.bw").read_bytes() == (tmp_path / "one" / "pred.bw").read_bytes()
    _only(tmp_path / "two", "pred.csv", "pred.bw")


@torchrun_needed
@pytest.mark.slow  # a torchrun launch of two processes
def test_score_variants_on_two_processes_writes_the_one_process_vcf(tmp_path, models, demo_data):
    genome = tmp_path / "genome" / "yeast.fa"  # its index is written beside it, not into the repository
    genome.parent.mkdir()
    shutil.copy(demo_data / "yeast_chrI_chrII.fa", genome)
    args = ["score-variants", models / "mlm", demo_data / "yeast_chrI_snvs.vcf", "--genome", genome,
            "--window", 64, "--batch-size", 4, "--device", "cpu"]
    for run in ("one", "two"):
        (tmp_path / run).mkdir()
    _one_process(*args, "-o", tmp_path / "one" / "scored.vcf.gz")
    _two_processes(tmp_path, *args, "-o", tmp_path / "two" / "scored.vcf.gz")
    one, two = (gzip.decompress((tmp_path / run / "scored.vcf.gz").read_bytes()).decode()
                for run in ("one", "two"))
    assert two == one and one.count("GM_LLR=") > 40
    _only(tmp_path / "two", "scored.vcf.gz")


# a worker that runs the library's table writer twice under torchrun, in the one process group the
# first call makes and the second reuses (a script may call several commands): first with a
# compute that fails on rank 1 only, after rank 0 has computed (and written the parts of) its own
# batches; then with windows longer than the record and --last drop, so that there is no row at all
FAILING_WORKER = """\
import json, os, sys
import pandas as pd
from genomamba.errors import InputDataError
from genomamba.infer.runner import model_table

model, fasta, out, reports = sys.argv[1:5]
rank = int(os.environ["RANK"])
reports_of_rank = []
for case, window, last in (("rank 1 fails", 1000, "keep"), ("no rows", 100_000, "drop")):
    batches = []

    def compute(model, ids, mask):
        batches.append(len(ids))
        if case == "rank 1 fails" and rank == 1 and len(batches) == 3:
            raise InputDataError("a failure of rank 1 only")
        return model.embed(ids, mask, pooling="mean")

    try:
        model_table(model, [fasta], out, compute, lambda v: pd.DataFrame(v).add_prefix("emb_"),
                    window=window, last=last, batch_size=2, device="cpu")
        report = {"error": None}
    except Exception as exc:
        report = {"error": type(exc).__name__, "message": str(exc), "exit_code": exc.exit_code}
    reports_of_rank.append({**report, "batches": len(batches)})
with open(os.path.join(reports, f"rank{rank}.json"), "w") as handle:
    json.dump(reports_of_rank, handle)
"""


@torchrun_needed
@pytest.mark.slow  # a torchrun launch of two processes
def test_a_failure_on_one_rank_or_no_row_at_all_fails_every_rank_and_leaves_nothing(tmp_path, models,
                                                                                   demo_data):
    script, reports, out_dir = tmp_path / "worker.py", tmp_path / "reports", tmp_path / "out"
    script.write_text(FAILING_WORKER)
    reports.mkdir()
    result = torchrun(str(script), str(models / "binary"), str(demo_data / "lambda_virus.fa"),
                       str(out_dir / "emb.parquet"), str(reports))
    assert result.returncode == 0, result.stderr[-3000:]  # the workers catch their errors to report them
    (zero, zero_rows), (one, one_rows) = (json.loads((reports / f"rank{r}.json").read_text()) for r in (0, 1))
    assert one["error"] == "InputDataError" and one["batches"] == 3
    assert zero["error"] == "RankFailedError" and zero["exit_code"] == EXIT_DATA
    assert "rank 1 failed: a failure of rank 1 only" in zero["message"]
    assert zero["batches"] == 13  # 49 windows in 25 batches: rank 0 finished its share first
    # no row: rank 0 says so as one process would, and rank 1 fails with it
    assert zero_rows["error"] == "InputDataError" and "no sequence to read" in zero_rows["message"]
    assert one_rows["error"] == "RankFailedError" and one_rows["exit_code"] == EXIT_DATA
    assert not out_dir.exists()  # no output, no parts folder, and the folder made for them is gone


@torchrun_needed
@pytest.mark.slow  # a torchrun launch of two processes
def test_an_output_that_cannot_be_written_fails_the_run_and_leaves_nothing(tmp_path, models, demo_data):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder\n")
    result = torchrun(genomamba_script(tmp_path), "predict", str(models / "binary"),
                       str(demo_data / "lambda_virus.fa"), "-o", str(blocker / "pred.tsv"), "--window",
                       "1000", "--device", "cpu")
    assert result.returncode != 0
    assert "a_file" in result.stderr and "not a directory" in result.stderr
    _only(tmp_path, "a_file")
