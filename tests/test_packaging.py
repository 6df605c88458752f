"""What `pip install` ships: every package of the source tree, the kernels, the licence, the Snakemake
workflow (as genomamba/workflow_files/, see setup.py), and nothing else.

The rest of the suite imports genomamba from the source tree (editable install, pytest's pythonpath), so
it cannot see a package missing from the wheel. The fast tests check the packaging configuration against
the source tree; the slow ones build the wheel, compare the workflow files it carries with the
repository's, install it into a scratch folder and run the installed `genomamba` command (doctor, embed,
predict, score-variants) in an interpreter that cannot reach the source tree and cannot import triton,
as on a CPU-only install.
"""

from __future__ import annotations

import json
import os
import site as sitedirs
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Source folder -> package name it ships as (pyproject.toml's [tool.setuptools] package-dir).
PACKAGE_ROOTS = {"genomamba": REPO / "genomamba", "genomamba.kernels": REPO / "kernels"}
TRITON_REQUIREMENT = "triton>=3.0; platform_system == 'Linux'"


def _source_packages() -> dict[str, Path]:
    """Every folder with an ``__init__.py`` under the package roots, by the package name it ships as."""
    packages = {}
    for name, root in PACKAGE_ROOTS.items():
        for init in root.rglob("__init__.py"):
            parts = init.parent.relative_to(root).parts
            packages[".".join((name, *parts))] = init.parent
    return packages


def _source_modules() -> set[str]:
    """Every ``.py`` file of the package roots, as its path inside the wheel."""
    files = set()
    for name, root in PACKAGE_ROOTS.items():
        prefix = Path(*name.split("."))
        files |= {(prefix / p.relative_to(root)).as_posix() for p in root.rglob("*.py")
                  if "__pycache__" not in p.parts}
    return files


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python >= 3.11 (tomllib)")
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def test_setuptools_discovers_every_package_of_the_source_tree():
    """The package list setuptools computes from pyproject.toml (the one a build uses) covers the tree."""
    code = (
        "import json, warnings\n"
        "warnings.simplefilter('ignore')\n"
        "from setuptools.dist import Distribution\n"
        "dist = Distribution()\n"
        "dist.parse_config_files()\n"
        "dist.set_defaults()  # package discovery, as before any build command\n"
        "print(json.dumps({'packages': dist.packages, 'package_dir': dist.package_dir}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    expected = _source_packages()
    assert {"genomamba", "genomamba.cli", "genomamba.infer", "genomamba.kernels"} <= set(expected)
    missing = sorted(set(expected) - set(found["packages"]))
    assert not missing, f"packages under genomamba/ or kernels/ that the wheel would leave out: {missing}"
    strays = sorted(p for p in found["packages"] if p != "genomamba" and not p.startswith("genomamba."))
    assert not strays, f"packages outside genomamba.* would be installed: {strays}"
    assert found["package_dir"].get("genomamba.kernels") == "kernels"


def test_triton_is_an_extra_and_the_licence_is_declared():
    """CPU installs do not pull triton; [gpu] and [dev] (interpreter tests) do; LICENSE is the Apache text."""
    project = _pyproject()["project"]
    assert not any(req.replace(" ", "").startswith("triton") for req in project["dependencies"])
    extras = project["optional-dependencies"]
    assert TRITON_REQUIREMENT in extras["gpu"] and TRITON_REQUIREMENT in extras["dev"]
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]
    text = (REPO / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "9. Accepting Warranty or Additional Liability." in text and "END OF TERMS AND CONDITIONS" in text


def _build_wheel(out: Path) -> Path:
    """`pip wheel .` without network (no build isolation); build/ and egg-info go to ``out``, not the tree."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        setuptools_version = version("setuptools")
    except PackageNotFoundError:
        setuptools_version = "0"
    if int(setuptools_version.split(".")[0]) < 77:
        pytest.fail(f"building the wheel needs setuptools>=77 here (found {setuptools_version}); "
                    "pip install -e '.[dev]'")
    extra_cfg = out / "build.cfg"
    extra_cfg.write_text(f"[build]\nbuild_base = {out / 'build'}\n[egg_info]\negg_base = {out}\n")
    env = {**os.environ, "DIST_EXTRA_CONFIG": str(extra_cfg)}
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
               "--disable-pip-version-check", "-q", "-w", str(out / "dist"), str(REPO)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = (out / "dist").glob("genomamba-*.whl")
    return wheel


# Runs in the child interpreter: python -I -S (no PYTHONPATH, no current folder, no site-packages .pth
# files, so neither the source tree nor an editable install's import hook is reachable), then sys.path is
# the scratch install followed by the site-packages of this environment (the dependencies).
_CHILD = """
import importlib.metadata, json, sys
site, deps, runs = json.loads(sys.argv[1])
sys.path[:0] = [site]
sys.path += deps

class NoTriton:  # a CPU-only install: triton is an optional extra
    def find_spec(self, name, path=None, target=None):
        if name == "triton" or name.startswith("triton."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, NoTriton())

import genomamba.cli, genomamba.infer, genomamba.kernels  # noqa
(dist,) = importlib.metadata.distributions(path=[site])
(script,) = [ep for ep in dist.entry_points if ep.group == "console_scripts" and ep.name == "genomamba"]
main = script.load()
codes = []
for args in runs:
    try:
        main(args, prog_name="genomamba")
        codes.append(0)
    except SystemExit as exc:
        codes.append(exc.code or 0)
modules = {n: getattr(m, "__file__", None) for n, m in sys.modules.items() if n.split(".")[0] == "genomamba"}
print(json.dumps({"codes": codes, "modules": modules, "triton": "triton" in sys.modules}))
"""


@pytest.fixture(scope="module")
def built_wheel(tmp_path_factory) -> Path:
    return _build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.mark.slow
def test_the_wheel_carries_the_workflow_files_byte_for_byte(built_wheel):
    """`genomamba workflow init` of an installed copy hands out exactly the repository's workflow."""
    from genomamba.workflow import PACKAGED_DIR, workflow_files

    prefix = f"genomamba/{PACKAGED_DIR}/"
    wheel = zipfile.ZipFile(built_wheel)
    shipped = {n[len(prefix):] for n in wheel.namelist() if n.startswith(prefix)}
    expected = {p.as_posix() for p in workflow_files(REPO)}
    assert {"Snakefile", "pipelines/schema/config.schema.yaml", "config/demo.yaml",
            "data_manifests/demo.yaml", "data/demo/yeast_chrI_chrII.fa", "data/demo/lambda_virus.fa.bgz",
            "data/demo/yeast_chrI_snvs.vcf"} <= expected
    assert shipped == expected
    assert all(wheel.read(prefix + name) == (REPO / name).read_bytes() for name in expected)


@pytest.mark.slow
def test_the_built_wheel_installs_and_runs_without_the_source_tree(tmp_path, demo_data, built_wheel):
    import pandas as pd

    from genomamba.alphabet import decode
    from genomamba.io.fasta import read_fasta
    from tests.infer.infer_cases import BINARY_HEAD, save_model

    wheel = built_wheel
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    dist_info = f"genomamba-{wheel.name.split('-')[1]}.dist-info"
    assert top == {"genomamba", dist_info}, f"unexpected top-level entries: {sorted(top)}"
    missing = sorted(_source_modules() - set(names))
    assert not missing, f"source modules missing from {wheel.name}: {missing}"
    assert any(n.startswith("genomamba/kernels/") and n.endswith(".py") for n in names)
    assert not [n for n in names if {"tests", "benchmarks", "scripts"} & set(n.split("/"))]
    assert f"{dist_info}/licenses/LICENSE" in names
    assert (zipfile.ZipFile(wheel).read(f"{dist_info}/licenses/LICENSE")
            == (REPO / "LICENSE").read_bytes())
    assert "genomamba = genomamba.cli:main" in zipfile.ZipFile(wheel).read(
        f"{dist_info}/entry_points.txt").decode()

    site = tmp_path / "site"
    command = [sys.executable, "-m", "pip", "install", "--no-deps", "--disable-pip-version-check", "-q",
               "--target", str(site), str(wheel)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr

    # Inputs: a tiny masked-LM and a tiny classifier (saved with genomamba's model-directory API), two pieces
    # of the committed phage lambda genome, and two SNVs on them.
    work = tmp_path / "work"  # the child's current folder, outside the repository
    work.mkdir()
    mlm = save_model(work / "mlm", rc_strategy="ph")
    classifier = save_model(work / "binary", rc_strategy="ph", head=BINARY_HEAD)
    (record,) = read_fasta(demo_data / "lambda_virus.fa", softmask=False)
    pieces = {"p1": decode(record.ids[0:300]).decode(), "p2": decode(record.ids[5000:5200]).decode()}
    fasta = work / "pieces.fa"
    fasta.write_text("".join(f">{name}\n{seq}\n" for name, seq in pieces.items()))
    alt = {"A": "C", "C": "G", "G": "T", "T": "A"}
    vcf = work / "snvs.vcf"
    vcf.write_text("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\n"
                   + "".join(f"{c}\t{p}\t.\t{pieces[c][p - 1]}\t{alt[pieces[c][p - 1]]}\n"
                             for c, p in [("p1", 150), ("p2", 20)]))
    runs = [
        ["doctor"],
        ["embed", str(mlm), str(fasta), "-o", "emb.parquet", "--device", "cpu"],
        ["predict", str(classifier), str(fasta), "-o", "pred.tsv", "--device", "cpu"],
        ["score-variants", str(mlm), str(vcf), "--genome", str(fasta), "-o", "snvs.tsv", "--window", "128",
         "--device", "cpu"],
    ]
    deps = sitedirs.getsitepackages()  # the dependencies, without the source tree or .pth import hooks
    if sitedirs.ENABLE_USER_SITE:
        deps.append(sitedirs.getusersitepackages())
    result = subprocess.run([sys.executable, "-I", "-S", "-c", _CHILD, json.dumps([str(site), deps, runs])],
                            cwd=work, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["codes"] == [0, 0, 0, 0], result.stdout + result.stderr
    assert not report["triton"]
    outside = {n: f for n, f in report["modules"].items() if f and not f.startswith(str(site) + os.sep)}
    assert not outside, f"imported from outside the installed copy: {outside}"
    assert {"genomamba.infer", "genomamba.kernels", "genomamba.cli.embed"} <= set(report["modules"])
    assert "triton not installed" in result.stdout and "pip install 'genomamba[gpu]'" in result.stdout
    assert "scan backend on cpu: chunked" in result.stdout
    assert len(pd.read_parquet(work / "emb.parquet")) == 2
    assert len(pd.read_csv(work / "pred.tsv", sep="\t")) == 2
    assert len(pd.read_csv(work / "snvs.tsv", sep="\t")) == 2
