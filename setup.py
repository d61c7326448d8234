"""Builds the two native pieces: the cffi syscall shim and the static stage-2 init.

Everything else is declared in pyproject.toml.
"""

import os
import shutil
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
        # Static and small: it runs inside the container after pivot_root, where
        # no host library is reachable, and it is what a created container costs
        # (musl: ~50 KiB, glibc: ~700 KiB, resident and copied by every create).
        compiler = stage2_compiler(self.build_temp)
        subprocess.check_call(
            [*compiler, "-static", "-Os", "-s", "-Wall", "-o", target, STAGE2_SOURCE]
        )


def stage2_compiler(build_temp: str) -> list[str]:
    """musl-gcc (Debian's musl-tools) when there is one, else $CC (glibc).

    OCIRT_STAGE2_CC names a compiler outright.  musl's own include directory
    has no kernel headers (linux/filter.h, linux/seccomp.h): they come from
    the host's, through a directory holding only those.
    """
    chosen = os.environ.get("OCIRT_STAGE2_CC")
    if chosen:
        return [chosen]
    musl = shutil.which("musl-gcc")
    headers = kernel_headers(build_temp) if musl else None
    if musl is None or headers is None:
        return [os.environ.get("CC", "cc")]
    return [musl, "-isystem", headers]


def kernel_headers(build_temp: str) -> str | None:
    """A directory with linux/, asm/ and asm-generic/ of the host's /usr/include."""
    multiarch = subprocess.run(
        ["gcc", "-print-multiarch"], capture_output=True, text=True, check=False
    ).stdout.strip()
    asm = [p for p in (f"/usr/include/{multiarch}/asm", "/usr/include/asm") if os.path.isdir(p)]
    sources = {"linux": "/usr/include/linux", "asm-generic": "/usr/include/asm-generic"}
    if not asm or not all(os.path.isdir(p) for p in sources.values()):
        return None
    sources["asm"] = asm[0]
    directory = os.path.join(os.path.abspath(build_temp), "stage2-kernel-headers")
    os.makedirs(directory, exist_ok=True)
    for name, source in sources.items():
        link = os.path.join(directory, name)
        if os.path.lexists(link):
            os.unlink(link)
        os.symlink(source, link)
    return directory


setup(
    cffi_modules=["ocirt/_shim/build.py:ffibuilder"],
    cmdclass={"build_ext": BuildWithStage2},
)
