"""The one build step pyproject.toml cannot declare: ship the Snakemake workflow inside the package.

The workflow's files stay at the top of the repository, where snakemake runs them from a clone.
Building a wheel copies them into the build tree as genomamba/workflow_files/, from where an
installed genomamba hands them out (`genomamba workflow init DIR`); an sdist carries them at the
top, as in the repository. Which files: WORKFLOW_PARTS in genomamba/workflow.py, loaded by path
because genomamba itself is not importable while it is being built. Everything else is in
pyproject.toml.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

ROOT = Path(__file__).resolve().parent


def _workflow_module():
    spec = importlib.util.spec_from_file_location("_genomamba_workflow", ROOT / "genomamba" / "workflow.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class BuildPyWithWorkflow(build_py):
    """build_py, then the workflow files copied into build_lib/genomamba/workflow_files/."""

    def run(self) -> None:
        super().run()
        self._workflow_outputs: list[str] = []
        if self.editable_mode:  # an editable install reads the workflow from the checkout itself
            return
        workflow = _workflow_module()
        target = Path(self.build_lib, "genomamba", workflow.PACKAGED_DIR)
        shutil.rmtree(target, ignore_errors=True)  # a reused build folder may hold files since removed
        copied = workflow.copy_workflow(ROOT, target)  # raises naming a missing part
        self._workflow_outputs = [str(target / rel) for rel in copied]

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        return super().get_outputs(include_bytecode) + getattr(self, "_workflow_outputs", [])


class SdistWithWorkflow(sdist):
    """sdist that also carries the workflow files, so a wheel built from it has them too."""

    def make_release_tree(self, base_dir, files) -> None:
        extra = [str(rel) for rel in _workflow_module().workflow_files(ROOT)]
        super().make_release_tree(base_dir, list(files) + [f for f in extra if f not in files])


setup(cmdclass={"build_py": BuildPyWithWorkflow, "sdist": SdistWithWorkflow})
