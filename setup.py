"Build hook: copy the shipped data (registry, paper numbers, experiment notebooks) into the package of a wheel."
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SHIPPED = ('data/experiments', 'data/paper', 'nbs/experiments')  # the same folders as robust_labels.resources.SHIPPED


class build_py_shipped(build_py):
    "build_py that also copies the SHIPPED folders to robust_labels/_shipped/ in the build (not for editable installs)."
    def run(self):
        super().run()
        if getattr(self, 'editable_mode', False):
            return  # an editable install reads the folders from the checkout (robust_labels.resources.shipped)
        root = Path(__file__).resolve().parent
        for folder in SHIPPED:
            src, dest = root / folder, Path(self.build_lib) / 'robust_labels' / '_shipped' / folder
            if not src.is_dir():
                raise FileNotFoundError(f"{src} is missing: build the wheel from a source checkout or a full sdist")
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(src, dest, ignore=shutil.ignore_patterns('.ipynb_checkpoints', '__pycache__'))


setup(cmdclass={'build_py': build_py_shipped})
