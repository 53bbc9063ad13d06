"""Only one job: ship `model_weights/` inside the built package (`mofind/model_weights/`).

The weights live at the repository root (trained, versioned and documented there); setuptools can only ship
package data that sits inside a package, so the build step copies the folder in. An editable install reads the
checkout's folder directly (`mofind.paths.model_dir`).
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

WEIGHTS = Path(__file__).resolve().parent / "model_weights"


class BuildPyWithWeights(build_py):
    def run(self):
        super().run()
        if not self.editable_mode:
            target = Path(self.build_lib) / "mofind" / "model_weights"
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(WEIGHTS, target)


setup(cmdclass={"build_py": BuildPyWithWeights})
