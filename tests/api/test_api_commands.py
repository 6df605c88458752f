"""The command layer of genomamba.api: one typed function per command, callable without the CLI.

Checked here: the signatures say what each function takes (keyword-only options, no ``**options``),
importing the package stays light, and a few functions run as their commands do.
"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys

import pytest

from genomamba import api
from genomamba.errors import UsageError
from tests.conftest import REPO_ROOT

COMMAND_FUNCTIONS = [name for name in api.__all__ if name not in ("Genomamba", "SequencesLike",
                                                                  "encode_sequences", "load")]
FASTA = ">chr1\n" + "ACGTACGGTCAA" * 20 + "\n>chr2\n" + "TTGACCA" * 30 + "\n"


def test_importing_the_api_imports_neither_torch_nor_pandas():
    code = ("import json, sys, genomamba.api\n"
            "print(json.dumps(sorted(m for m in ('torch', 'pandas') if m in sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT,
                            timeout=60, check=True)
    assert json.loads(result.stdout) == []


def test_the_notebook_names_stay_importable():
    import genomamba
    from genomamba.api import Genomamba, encode_sequences, load

    assert load is genomamba.load and Genomamba.__name__ == "Genomamba"
    [lone] = encode_sequences("AcgT")  # a lone string is one sequence, any case
    assert lone.tolist() == encode_sequences(["ACGT"])[0].tolist()


@pytest.mark.parametrize("name", COMMAND_FUNCTIONS)
def test_every_command_function_says_what_it_takes_and_does(name):
    function = getattr(api, name)
    parameters = inspect.signature(function).parameters.values()
    kinds = {p.kind for p in parameters}
    assert not kinds & {inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL}, name
    # options are named at the call: everything with a default is keyword-only
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in parameters if p.default is not p.empty), name
    assert all(p.annotation is not p.empty for p in parameters), name
    doc = inspect.getdoc(function) or ""
    assert len(doc.splitlines()) >= 3 and ("Returns" in doc or "Raises" in doc or "Never raises" in doc), name


def test_tokenize_writes_shards_and_a_second_run_does_nothing(tmp_path):
    fasta = tmp_path / "g.fa"
    fasta.write_text(FASTA)
    warnings = []
    first = api.tokenize([fasta], tmp_path / "shards", window=64, warn=warnings.append)
    assert first.status == "written" and first.manifest["totals"]["records"] == 2
    assert first.manifest["parameters"]["window"] == 64
    again = api.tokenize([fasta], tmp_path / "shards", window=64)
    assert again.status == "up-to-date"


def test_options_that_cannot_work_together_are_usage_errors(tmp_path):
    fasta = tmp_path / "g.fa"
    fasta.write_text(FASTA)
    with pytest.raises(UsageError, match="START must be at least 1"):
        api.tokenize([fasta], tmp_path / "shards", regions=["chr1:0-10"])
    assert not (tmp_path / "shards").exists()
    with pytest.raises(ValueError):  # a UsageError is a ValueError too, as the library raised before
        api.finetune(["x.csv"], tmp_path / "ft", preset="tiny", seeds="1,1")


def test_validate_reports_invalid_input_instead_of_raising(tmp_path):
    good, bad = tmp_path / "good.fa", tmp_path / "bad.fa"
    good.write_text(FASTA)
    bad.write_text(">r\nACGTXACGT\n")
    report = api.validate([good, bad])
    assert [row["record"] for row in report.rows] == ["chr1", "chr2", "r"]
    assert not report.valid and len(report.errors) == 1 and "record 'r'" in report.errors[0]
    assert api.validate([good]).valid


def test_fetch_lists_a_manifest_without_fetching():
    rows = api.manifest_files(REPO_ROOT / "data_manifests" / "demo.yaml", genomes=["lambda"])
    assert [(r["genome"], r["file"]) for r in rows] == [("lambda", "lambda_virus.fa.bgz")]
