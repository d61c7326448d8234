"""The package build's own steps; everything else is declared in pyproject.toml.

* ``build_ext``: the cffi syscall shim, then the static stage-2 init ``ocirt-init``;
* ``build_py``: the JSON schemas (``schemas/`` at the top of the repository)
  as package data (``ocirt/schemas/``), the commit (``ocirt/_shim/commit.txt``)
  and the code bundle, unstamped (``ocirt._codebundle``: the first run stamps it);
* ``build_scripts``: ``bin/ocirt``, the compiled launcher (relocatable:
  ``ocirt/_shim/build_launcher.py``), or where it cannot be compiled the plain
  script, which is the slow path and says so;
* ``build_man``: man pages and bash completion from the CLI's flag tables
  (``ocirt/cli/manpages.py``), installed as data files under ``share/``.
"""

import glob
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Command, setup
from setuptools.command.build import build
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist
from setuptools.dist import Distribution

# setuptools has no build_scripts of its own: the one of the distutils it ships.
build_scripts = Distribution().get_command_class("build_scripts")

HERE = os.path.dirname(os.path.abspath(__file__))
STAGE2_SOURCE = os.path.join("ocirt", "_shim", "stage2.c")
SHARE_BUILD = os.path.join("build", "share")  # build_man's output (data_files)


def load_by_path(name: str, path: str):
    """A module of the source tree, without importing the package (not built yet)."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(HERE, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


def git_commit() -> str:
    """The checkout's commit (with "-dirty" for local changes), or "" outside git."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", HERE, *args], capture_output=True, text=True, check=False
        )
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "HEAD")
    if commit and git("status", "--porcelain", "--untracked-files=no"):
        commit += "-dirty"
    return commit


class BuildPackage(build_py):
    """The modules, plus the schemas, the commit and the unstamped code bundle."""

    def run(self) -> None:
        super().run()
        schema = load_by_path("ocirt_build_schema", "ocirt/_shim/build_schema.py")
        if self.editable_mode:  # the checkout is the package: schemas/ and .git are found
            schema.generate(Path(HERE, "schemas"), Path(HERE, "ocirt"))
            return
        package_dir = os.path.join(self.build_lib, "ocirt")
        schema.generate(Path(HERE, "schemas"), Path(package_dir))
        schemas = os.path.join(package_dir, "schemas")
        os.makedirs(schemas, exist_ok=True)
        for path in sorted(glob.glob(os.path.join(HERE, "schemas", "*.json"))):
            self.copy_file(path, schemas)
        commit = git_commit() or self.recorded_commit()
        if commit:
            with open(os.path.join(package_dir, "_shim", "commit.txt"), "w") as f:
                f.write(commit + "\n")
        codebundle = load_by_path("ocirt_build_codebundle", "ocirt/_codebundle.py")
        codebundle.write(package_dir, unstamped=True)

    @staticmethod
    def recorded_commit() -> str:
        """An sdist has no .git: the commit its own build recorded (see MANIFEST.in)."""
        try:
            with open(os.path.join(HERE, "ocirt", "_shim", "commit.txt")) as f:
                return f.read().strip()
        except OSError:
            return ""


class SourceDistribution(sdist):
    """An sdist has no .git: it carries the commit it was made from."""

    def make_release_tree(self, base_dir: str, files: list[str]) -> None:
        super().make_release_tree(base_dir, files)
        commit = git_commit()
        if commit:
            target = os.path.join(base_dir, "ocirt", "_shim", "commit.txt")
            if os.path.exists(target):
                os.unlink(target)  # a hard link to the checkout's file, maybe
            with open(target, "w") as f:
                f.write(commit + "\n")


class BuildLauncher(build_scripts):
    """bin/ocirt: the compiled launcher, else the plain script (the slow path)."""

    editable_mode = False  # set by setuptools for `pip install -e`

    def finalize_options(self) -> None:
        super().finalize_options()
        self.scripts = []  # the one script is written here, not copied

    def get_source_files(self) -> list[str]:
        return []

    def run(self) -> None:
        os.makedirs(self.build_dir, exist_ok=True)
        target = os.path.join(self.build_dir, "ocirt")
        launcher = load_by_path("ocirt_build_launcher", "ocirt/_shim/build_launcher.py")
        # An editable install runs the checkout's modules: its path is part of the launcher.
        package_parent = HERE if self.editable_mode else None
        try:
            launcher.compile_launcher(target, launcher.relocatable_defines(package_parent))
        except (OSError, subprocess.CalledProcessError, launcher.LauncherUnavailable) as e:
            self.warn(
                f"ocirt: cannot compile the fast launcher ({e}); installing the plain"
                " script, the slow path (~10 ms more per command)"
            )
            with open(target, "w") as f:
                f.write(launcher.SCRIPT)
        os.chmod(target, 0o755)


class BuildMan(Command):
    """Man pages (section 8) and bash completion, from ocirt.cli's tables."""

    description = "generate ocirt's man pages and bash completion"
    user_options: list = []

    def initialize_options(self) -> None:
        pass

    def finalize_options(self) -> None:
        pass

    def run(self) -> None:
        sys.path.insert(0, HERE)  # the source tree: pure Python, nothing built needed
        try:
            from ocirt.cli import manpages

            manpages.write_all(os.path.join(HERE, SHARE_BUILD))
        finally:
            sys.path.remove(HERE)


def share_files() -> list[tuple[str, list[str]]]:
    """data_files: what build_man writes (the list is fixed by the command table)."""
    sys.path.insert(0, HERE)
    try:
        from ocirt.cli import manpages

        outputs = manpages.output_names()
    finally:
        sys.path.remove(HERE)
    grouped: dict[str, list[str]] = {}
    for relative in outputs:
        grouped.setdefault(os.path.join("share", os.path.dirname(relative)), []).append(
            os.path.join(SHARE_BUILD, relative)
        )
    return sorted(grouped.items())


build.sub_commands = [*build.sub_commands, ("build_man", None)]

setup(
    cffi_modules=["ocirt/_shim/build.py:ffibuilder"],
    cmdclass={
        "build_ext": BuildWithStage2,
        "build_py": BuildPackage,
        "build_scripts": BuildLauncher,
        "build_man": BuildMan,
        "sdist": SourceDistribution,
    },
    scripts=["ocirt"],  # written by BuildLauncher (has_scripts() turns the step on)
    data_files=share_files(),
)
