"""The layer contract (docs/architecture.md), checked on the import graph of genomamba/ and kernels/.

Every import is read with ``ast`` -- at module level, inside functions, under ``TYPE_CHECKING``,
relative imports, and ``importlib.import_module`` of a literal module name -- and each module
belongs to a top-level unit (``genomamba.train.finetune`` to ``train``). A unit may import its
own modules and units of lower layers, never one of its own layer (sideways: train and infer)
or above. The planted-import tests prove that the checker would report a violation.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

REPO = Path(__file__).resolve().parents[1]
ROOT = "genomamba"  # the package itself (genomamba/__init__.py)

# unit -> (layer, why it sits there). A unit may import units of lower layers only.
LAYERS: dict[str, tuple[int, str]] = {
    "errors": (0, "exception types and their exit codes, raised by every layer; imports nothing"),
    "alphabet": (0, "symbols <-> ids, complement table, IUPAC policy; numpy only"),
    "workflow": (0, "copies the Snakemake workflow; setup.py loads it by path, so standard library only"),
    "kernels": (0, "the Triton scan and conv kernels (top-level kernels/, shipped as genomamba.kernels)"),
    "optional": (1, "imports an optional package or names the extra that installs it (raises errors)"),
    "strict_config": (1, "builds config dataclasses strictly from mappings (raises errors); no torch"),
    "ops": (1, "scan dispatcher, references and conv: tensor operations that call the kernels"),
    "io": (2, "FASTA/BED/VCF/labels readers and writers, windows, token shards (alphabet, optional)"),
    "features": (2, "k-mer and one-hot features of token arrays for the baselines (alphabet)"),
    "model": (2, "mixers, RC wrappers, backbone, heads, configs (ops, alphabet for the complement)"),
    "pretrained": (2, "the registry of shipped models: names -> package-data model directories with "
                      "sha256 pins (errors); no torch, so the CLI checks names while parsing options"),
    "model_card": (2, "the README.md of a model directory, from its config.json dict (yaml); no torch"),
    "model_directory": (3, "the only module that reads and writes model directories (model, io)"),
    "tasks": (3, "labelled tasks: make-task builders, targets of labels, mutagenesis variants (io); "
                 "below runtime, train and infer, which import it"),
    "runtime": (4, "what train and infer share: device, autocast, batching, sequence-head outputs"),
    "train": (5, "pretraining and fine-tuning loops, evaluation, metrics"),
    "infer": (5, "embed, predict, score-variants and tracks over FASTA/BED/VCF"),
    "suite": (6, "the benchmark suite: fine-tunes (train) and embeds (infer) against baselines"),
    "api": (7, "the typed library surface the CLI and notebooks call"),
    "cli": (8, "click commands, each parsing options and calling the library"),
    "hf": (8, "Hugging Face Auto classes over model directories (api, model_directory, model)"),
    "sklearn": (8, "a scikit-learn transformer over genomamba.load(...).embed (api)"),
    ROOT: (9, "__version__, and genomamba.load looked up lazily from api"),
}
# ops and kernels work on any sequence of vectors; the DNA lives above them
DNA_AGNOSTIC = {"ops", "kernels"}
DNA_UNITS = {"alphabet", "io", "features"}
# Import no torch or triton anywhere, not even lazily, and only units that do the same: the CLI
# answers --help, validate and tokenize on a login node without loading torch. `import genomamba`
# loads no torch either (checked by running it), though genomamba.load imports api on first use.
TORCH_FREE = {"alphabet", "io", "tasks", "errors", "optional", "strict_config", "workflow", "pretrained",
              "model_card"}
TORCH_PACKAGES = {"torch", "triton"}
# Import nothing of genomamba, not even the package itself (whose __version__ every other unit may
# import): kernels/ lives outside the package folder, and setup.py loads workflow.py by path.
STANDALONE = {"kernels", "workflow"}
# (importer unit, imported unit) -> why the contract tolerates it; keep this empty
ALLOWED: dict[tuple[str, str], str] = {}


class Module(NamedTuple):
    name: str  # dotted, e.g. genomamba.train.finetune (kernels/x.py is genomamba.kernels.x)
    path: Path
    is_package: bool  # an __init__.py


class Import(NamedTuple):
    importer: str  # dotted module name
    path: Path
    line: int
    target: str  # dotted name of what is imported, e.g. genomamba.runtime.device or torch


class ImportGraph(NamedTuple):
    modules: list[Module]
    imports: list[Import]


def _modules(package_dir: Path, kernels_dir: Path) -> list[Module]:
    found = []
    for top, name in ((package_dir, ROOT), (kernels_dir, f"{ROOT}.kernels")):
        for folder, dirs, files in os.walk(top):
            here = Path(folder)
            # a genomamba/kernels link to kernels/ (device scripts make one) is read as kernels/
            dirs[:] = sorted(d for d in dirs if d != "__pycache__" and (here, d) != (package_dir, "kernels"))
            prefix = ".".join([name, *here.relative_to(top).parts])
            for file in sorted(f for f in files if f.endswith(".py")):
                stem = file[:-3]
                dotted = prefix if stem == "__init__" else f"{prefix}.{stem}"
                found.append(Module(dotted, here / file, stem == "__init__"))
    return found


def _string_constants(tree: ast.Module) -> dict[str, str]:
    """Module-level ``NAME = "text"`` assignments (a module name passed to import_module by name)."""
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(getattr(node.value, "value", None), str):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    found[target.id] = node.value.value
    return found


def _imports_of(source: Module, units: set[str]):
    tree = ast.parse(source.path.read_text(), filename=str(source.path))
    constants = _string_constants(tree)
    package = source.name if source.is_package else source.name.rpartition(".")[0]
    module, path = source.name, source.path
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, path, node.lineno, alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            if base == ROOT:  # from genomamba import model_directory / __version__
                for alias in node.names:
                    target = f"{ROOT}.{alias.name}" if alias.name in units else ROOT
                    yield Import(module, path, node.lineno, target)
            else:
                yield Import(module, path, node.lineno, base)
        elif isinstance(node, ast.Call) and _is_import_module(node.func) and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                yield Import(module, path, node.lineno, arg.value)
            elif isinstance(arg, ast.Name) and arg.id in constants:
                yield Import(module, path, node.lineno, constants[arg.id])


def _is_import_module(func: ast.expr) -> bool:
    return (isinstance(func, ast.Attribute) and func.attr == "import_module") or (
        isinstance(func, ast.Name) and func.id == "import_module"
    )


def import_graph(package_dir: Path, kernels_dir: Path) -> ImportGraph:
    """The modules of ``package_dir`` (genomamba/) and ``kernels_dir`` (kernels/), and all their imports."""
    modules = _modules(package_dir, kernels_dir)
    units = {unit_of(m.name) for m in modules}
    return ImportGraph(modules, [imp for module in modules for imp in _imports_of(module, units)])


def unit_of(module: str) -> str:
    """``genomamba.train.finetune`` -> ``train``; ``genomamba`` -> the package itself (ROOT)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ROOT


def layer_violations(graph: ImportGraph, layers: dict[str, tuple[int, str]] = LAYERS) -> list[str]:
    """One line per module without a layer and per import that breaks the contract (naming the
    file, both modules and the rule)."""
    problems = [
        f"{m.path}: {m.name} belongs to {unit_of(m.name)!r}, which has no layer in LAYERS"
        for m in graph.modules
        if unit_of(m.name) not in layers
    ]
    for imp in graph.imports:
        unit = unit_of(imp.importer)
        where = f"{imp.path}:{imp.line}: {imp.importer} imports {imp.target}"
        top = imp.target.split(".")[0]
        if unit not in layers:
            continue  # reported above
        if top in TORCH_PACKAGES:
            if unit in TORCH_FREE:
                problems.append(f"{where}: {unit} must not import {top}")
            continue
        if top != ROOT:
            continue
        target = unit_of(imp.target)
        if target == unit:
            continue
        if unit in STANDALONE:
            problems.append(f"{where}: {unit} must import nothing of genomamba")
        elif target == ROOT:
            continue  # the package itself (__version__) is loaded before any of its modules anyway
        elif target not in layers:
            problems.append(f"{where}: {target!r} has no layer in LAYERS")
        elif (unit, target) in ALLOWED:
            continue
        elif layers[target][0] >= layers[unit][0]:
            direction = "sideways" if layers[target][0] == layers[unit][0] else "upward"
            problems.append(
                f"{where}: {unit} (layer {layers[unit][0]}) may not import {target} "
                f"(layer {layers[target][0]}): {direction}"
            )
        elif unit in DNA_AGNOSTIC and target in DNA_UNITS:
            problems.append(f"{where}: {unit} knows no DNA and may not import {target}")
        elif unit in TORCH_FREE and target not in TORCH_FREE:
            problems.append(f"{where}: {unit} is torch-free and may import only torch-free units")
    return problems


def test_genomamba_follows_the_layer_contract():
    problems = layer_violations(import_graph(REPO / "genomamba", REPO / "kernels"))
    assert not problems, "\n".join(problems)


def test_the_graph_sees_imports_inside_functions_and_by_name():
    imports = import_graph(REPO / "genomamba", REPO / "kernels").imports
    targets = {(imp.importer, imp.target) for imp in imports}
    # evaluate() imports model_directory inside the function, to keep the module light
    assert ("genomamba.train.evaluate", "genomamba.model_directory") in targets
    # the kernels' relative imports are resolved inside genomamba.kernels
    assert any(unit_of(i.importer) == unit_of(i.target) == "kernels" for i in imports)
    # ops reaches the Triton kernels (by an import statement or importlib.import_module)
    assert any(unit_of(i.importer) == "ops" and i.target.startswith("genomamba.kernels") for i in imports)


PLANTED = [
    # (file, its module, a line planted inside a function, the module it imports, the rule broken)
    ("genomamba/ops/dispatch.py", "genomamba.ops.dispatch", "from genomamba.train.pretrain import pretrain",
     "genomamba.train.pretrain", "upward"),
    ("genomamba/infer/planted.py", "genomamba.infer.planted", "from genomamba.train.evaluate import evaluate",
     "genomamba.train.evaluate", "sideways"),
    ("genomamba/ops/planted.py", "genomamba.ops.planted", "from genomamba.alphabet import PAD_ID",
     "genomamba.alphabet", "knows no DNA"),
    ("genomamba/io/planted.py", "genomamba.io.planted", "import torch", "torch", "must not import torch"),
    ("genomamba/io/planted.py", "genomamba.io.planted", "from genomamba.model_directory import read_config",
     "genomamba.model_directory", "upward"),
    ("genomamba/alphabet.py", "genomamba.alphabet", "from genomamba.runtime.device import World",
     "genomamba.runtime.device", "upward"),
    ("genomamba/model/planted.py", "genomamba.model.planted",
     'importlib.import_module("genomamba.cli.embed")', "genomamba.cli.embed", "upward"),
    ("kernels/planted.py", "genomamba.kernels.planted", "from ..errors import InputDataError",
     "genomamba.errors", "must import nothing of genomamba"),
]


@pytest.mark.parametrize(("where", "importer", "line", "target", "rule"), PLANTED)
def test_a_planted_import_is_reported_naming_both_modules(tmp_path, where, importer, line, target, rule):
    package, kernels = tmp_path / "genomamba", tmp_path / "kernels"
    for folder in (package / "ops", package / "io", package / "infer", package / "model", kernels):
        folder.mkdir(parents=True)
        (folder / "__init__.py").write_text("")
    (package / "__init__.py").write_text('__version__ = "0"\n')
    # the real dispatcher, so that a line planted there sits among the imports it really has
    shutil.copy(REPO / "genomamba" / "ops" / "dispatch.py", package / "ops" / "dispatch.py")
    assert not layer_violations(import_graph(package, kernels))

    path = tmp_path / where
    before = path.read_text() if path.exists() else "import importlib\n"
    path.write_text(before + "\n\ndef planted():\n    " + line + "\n")
    problems = layer_violations(import_graph(package, kernels))
    assert len(problems) == 1, problems
    assert f"{importer} imports {target}:" in problems[0] and rule in problems[0], problems[0]


def test_importing_genomamba_and_its_torch_free_units_loads_no_torch():
    torch_free = [m.name for m in _modules(REPO / ROOT, REPO / "kernels") if unit_of(m.name) in TORCH_FREE]
    modules = [ROOT, *torch_free]
    code = f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\nprint([*sys.modules])"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    loaded = set(ast.literal_eval(result.stdout))
    assert set(modules) <= loaded and not loaded & TORCH_PACKAGES, modules


def test_the_docs_state_the_contract_for_every_unit():
    docs = (REPO / "docs" / "architecture.md").read_text()
    missing = [unit for unit in LAYERS if unit != ROOT and f"`{unit}`" not in docs]
    assert not missing, f"docs/architecture.md does not place {missing}"
