"""Builds the two native pieces: the cffi syscall shim and the static stage-2 init.

Everything else is declared in pyproject.toml.
"""

import os
import subprocess

from setuptools import setup
from setuptools.command.build_ext import build_ext

STAGE2_SOURCE = os.path.join("ocirt", "_shim", "stage2.c")


class BuildWithStage2(build_ext):
    """Also compile ocirt-init next to the extension module (in place for -e)."""

    def run(self) -> None:
        super().run()
        ext_path = self.get_ext_fullpath("ocirt._shim._ocirt_shim")
        target = os.path.join(os.path.dirname(ext_path), "ocirt-init")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        cc = os.environ.get("CC", "cc")
        # Static and small: it runs inside the container after pivot_root, where
        # no host library is reachable, and it is what a created container costs.
        subprocess.check_call([cc, "-static", "-Os", "-s", "-Wall", "-o", target, STAGE2_SOURCE])


setup(
    cffi_modules=["ocirt/_shim/build.py:ffibuilder"],
    cmdclass={"build_ext": BuildWithStage2},
)
