"""The launcher's code bundle (ocirt/_codebundle.py): served, never stale, sealed.

Each test copies the package to a temporary directory and writes the bundle
there, so the checkout's own bundle (written by ``python -m ocirt.launcher``)
is neither needed nor touched; one test checks that the installed launcher
finds its own.  The imports run in a fresh ``python -I -S``, as the launcher
does.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ok, run_isolated

from ocirt import _codebundle

REPO = Path(__file__).resolve().parents[1]

# Modules of the create path and of the short commands that import nothing from
# site-packages (cffi, jsonschema), so a bare `python -I -S` can load them.
PURE_MODULES = ("ocirt.container", "ocirt.state", "ocirt.spec", "ocirt.cgroups.v1")


@pytest.fixture
def package(tmp_path: Path) -> Path:
    """A copy of the ocirt package with its bundle written; returns the copy's parent."""
    shutil.copytree(
        REPO / "ocirt", tmp_path / "ocirt", ignore=shutil.ignore_patterns("__pycache__")
    )
    _codebundle.write(str(tmp_path / "ocirt"))
    return tmp_path


def imports_report(parent: Path, extra: str = "") -> dict:
    """Install PARENT's bundle in a fresh interpreter, import PURE_MODULES; what happened."""
    code = (
        "import sys, json\n"
        f"sys.path.insert(0, {str(parent)!r})\n"
        "from ocirt._codebundle import install\n"
        "installed = install()\n"
        f"{extra}"
        f"for name in {PURE_MODULES!r}:\n"
        "    __import__(name)\n"
        "mods = {n: m for n, m in sys.modules.items() if n.startswith('ocirt')}\n"
        "print(json.dumps({\n"
        "    'installed': installed,\n"
        "    'loaders': {n: type(m.__spec__.loader).__name__ for n, m in mods.items()},\n"
        "    'files': {n: m.__file__ for n, m in mods.items()},\n"
        "    'future_imported': '__future__' in sys.modules,\n"
        "    'annotation': sys.modules['ocirt.spec'].Spec.from_dict.__annotations__['return'],\n"
        "    'stale_mark': getattr(sys.modules['ocirt.errors'], 'STALE_MARK', None),\n"
        "}))\n"
    )
    return json.loads(ok(run_isolated(code)))


def test_modules_come_from_the_bundle_with_their_files(package: Path) -> None:
    report = imports_report(package)
    assert report["installed"] is True
    loaded = set(report["loaders"]) - {"ocirt._codebundle", "ocirt"}  # imported to install
    assert {"ocirt.container", "ocirt.state", "ocirt.spec", "ocirt.cgroups.v1"} <= loaded
    assert {report["loaders"][n] for n in loaded} == {"BundleFinder"}
    for name in loaded:  # __file__ as the path finder sets it: tracebacks, STAGE2_PATH
        relative = name.replace(".", "/")
        relative += "/__init__.py" if (package / relative).is_dir() else ".py"
        assert report["files"][name] == str(package / relative)


def test_the_future_statement_is_a_flag_without_its_import(package: Path) -> None:
    report = imports_report(package)
    assert report["future_imported"] is False
    assert report["annotation"] == "Spec"  # still postponed: a string, as with the import


def test_an_edited_module_is_imported_from_its_source(package: Path) -> None:
    errors = package / "ocirt" / "errors.py"
    errors.write_text(errors.read_text() + "\nSTALE_MARK = 'edited'\n")
    report = imports_report(package)
    assert report["stale_mark"] == "edited"
    assert report["loaders"]["ocirt.errors"] == "SourceFileLoader"
    assert report["loaders"]["ocirt.state"] == "BundleFinder"  # the rest still served


@pytest.mark.parametrize("damage", ["magic", "truncated", "missing"])
def test_a_foreign_or_broken_bundle_is_not_installed(package: Path, damage: str) -> None:
    path = Path(_codebundle.bundle_path(str(package / "ocirt")))
    data = path.read_bytes()
    if damage == "magic":
        path.write_bytes(b"\0\0\0\0" + data[4:])
    elif damage == "truncated":
        path.write_bytes(data[:20])
    else:
        path.unlink()
    report = imports_report(package)
    assert report["installed"] is False
    assert set(report["loaders"].values()) == {"SourceFileLoader"}


def test_sealing_removes_the_finder_and_closes_the_bundle(package: Path) -> None:
    code = (
        "import sys, os\n"
        f"sys.path.insert(0, {str(package)!r})\n"
        "from ocirt._codebundle import install, BundleFinder\n"
        "install()\n"
        "import ocirt.process.common as common\n"
        "fd = next(f for f in sys.meta_path if isinstance(f, BundleFinder)).fd\n"
        "common.seal_imports()\n"
        "print(sorted(getattr(f, '__name__', type(f).__name__) for f in sys.meta_path))\n"
        "try:\n"
        "    os.fstat(fd)\n"
        "except OSError as e:\n"
        "    print('closed', e.errno)\n"
        "try:\n"
        "    import ocirt.record\n"
        "except ModuleNotFoundError:\n"
        "    print('sealed')\n"
    )
    assert ok(run_isolated(code)).splitlines() == [
        "['BuiltinImporter', 'FrozenImporter']",
        "closed 9",
        "sealed",
    ]


def _compiled(path: str | Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"\x7fELF"


def test_the_installed_launcher_is_compiled_and_stops_at_the_core_phase(
    ocirt_bin: str, tmp_path: Path
) -> None:
    """scripts/install-deps.sh compiled ocirt/_shim/launcher.c, and a short command
    runs on the interpreter's core phase with its modules from the bundle: no
    path machinery (getpath reads pyvenv.cfg), no encodings, no .py or .pyc."""
    assert _compiled(ocirt_bin), "scripts/install-deps.sh wrote a script: see its output"
    trace = tmp_path / "trace"
    root = tmp_path / "root"
    done = subprocess.run(
        ["strace", "-f", "-e", "trace=openat,newfstatat,stat", "-o", str(trace),
         ocirt_bin, "--root", str(root), "delete", "--force", "nope"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    opened = trace.read_text()
    assert _codebundle.BUNDLE_NAME in opened
    assert "pyvenv.cfg" not in opened
    assert "/encodings/" not in opened
    sources = [line for line in opened.splitlines() if re.search(r'openat\(.*\.pyc?"', line)]
    assert sources == []


def test_the_launcher_writes_a_compiled_launcher_and_the_bundle(
    package: Path, tmp_path: Path
) -> None:
    """`python -m ocirt.launcher TARGET` compiles the launcher, then writes the
    bundle of the package it runs from (here the copy: `-m` puts the working
    directory first); the launcher runs that copy."""
    bundle_file = Path(_codebundle.bundle_path(str(package / "ocirt")))
    bundle_file.unlink()
    target = tmp_path / "launcher"
    subprocess.run([sys.executable, "-m", "ocirt.launcher", str(target)], cwd=package, check=True)
    assert _compiled(target)
    assert imports_report(package)["installed"] is True
    mark = "container does not exist (the copy)"
    errors = package / "ocirt" / "errors.py"
    errors.write_text(errors.read_text().replace('"container does not exist"', repr(mark)))
    done = subprocess.run(
        [str(target), "--root", str(tmp_path / "root"), "state", "nope"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    # The edited module comes from its source, through the path finder that
    # finishing the interpreter's start puts in place.
    assert done.returncode == 1
    assert mark in done.stderr


@pytest.mark.parametrize("damage", ["no bundle", "edited _codebundle"])
def test_a_compiled_launcher_without_a_usable_bundle_starts_fully(
    package: Path, tmp_path: Path, damage: str
) -> None:
    target = tmp_path / "launcher"
    subprocess.run([sys.executable, "-m", "ocirt.launcher", str(target)], cwd=package, check=True)
    if damage == "no bundle":
        Path(_codebundle.bundle_path(str(package / "ocirt"))).unlink()
    else:
        with open(package / "ocirt" / "_codebundle.py", "a") as f:
            f.write("STALE_MARK = 1\n")
    root = str(tmp_path / "root")
    version = subprocess.run([str(target), "--version"], capture_output=True, text=True)
    assert ok(version).startswith("ocirt version ")
    gone = subprocess.run([str(target), "--root", root, "delete", "-f", "nope"])
    assert gone.returncode == 0
    usage = subprocess.run([str(target), "--root", root, "state"], capture_output=True, text=True)
    assert usage.returncode == 1
    assert 'state\\" requires exactly 1 argument(s)' in usage.stderr


def test_the_launcher_finds_its_installation_without_proc(ocirt_bin: str) -> None:
    """In a mount namespace without /proc (entered with nsenter, say), the
    launcher cannot read /proc/self/exe: it finds its installation from the
    path execve was given (AT_EXECFN) instead, as runc runs there too.
    Checked: the launcher before this fix failed with "No module named 'ocirt'"."""
    from conftest import need_root

    need_root()
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed")
    done = subprocess.run(
        ["unshare", "-m", "sh", "-c", 'umount -l /proc && exec "$0" --version', ocirt_bin],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ocirt version "), done.stdout


# Put first in ocirt.fastcli.main of a package copy: what the launcher's start
# left, reported on stderr before anything of ocirt runs.
START_PROBE = """\
    import gc, posix, json
    import stat  # a deep-frozen module the bundle does not hold: the frozen importer's

    def names(code):
        yield from code.co_names + code.co_varnames
        for const in code.co_consts:
            if isinstance(const, type(code)):
                yield from names(const)
            elif isinstance(const, str) and const.isascii() and const.isidentifier():
                yield const

    def uninterned(module):
        codes = [f.__code__ for f in vars(module).values() if hasattr(f, "__code__")]
        # A fresh equal string interned is the module's own only if that one was
        # (one-character strings are singletons: no fresh copy to make).
        return sorted(
            {n for c in codes for n in names(c) if len(n) > 1 and sys.intern("".join(n)) is not n}
        )

    import pyexpat, zlib  # built in, their libraries linked from archives where there are
    parser = pyexpat.ParserCreate()
    parser.Parse("<a><b/></a>", True)
    report = {
        "zlib": zlib.decompress(zlib.compress(b"ocirt" * 50)) == b"ocirt" * 50,
        "expat": parser.CurrentLineNumber,
        "gc_enabled": gc.isenabled(),
        "collections": [generation["collections"] for generation in gc.get_stats()],
        "uninterned": {m: uninterned(sys.modules[m]) for m in ("_frozen_importlib", "stat")},
    }
    posix.write(2, json.dumps(report).encode())
    posix._exit(0)
"""


def test_the_launcher_starts_without_the_collector_and_interns_what_it_runs(
    package: Path, tmp_path: Path
) -> None:
    """The launcher's trimmed start (ocirt/_shim/build_launcher.py): the
    built-in modules whose libraries it may link from static archives work;
    launcher.c's link-time wrappers of CPython's start: no cyclic collection
    before ocirt runs (the launcher before them ran ~5 during the core phase),
    and the deep-frozen modules that run (importlib's bootstrap, a frozen module
    imported later) have their names and identifier constants interned as
    CPython's own start leaves them, though the start no longer interns every
    frozen module."""
    fastcli = package / "ocirt" / "fastcli.py"
    source, count = re.subn(
        r"(\ndef main\(\)[^\n]*:\n)", lambda m: m.group(1) + START_PROBE, fastcli.read_text()
    )
    assert count == 1
    fastcli.write_text(source)
    target = tmp_path / "launcher"
    # Compiles the launcher and writes the copy's bundle, the probe in it.
    subprocess.run([sys.executable, "-m", "ocirt.launcher", str(target)], cwd=package, check=True)
    done = subprocess.run([str(target), "state", "x"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stderr)
    assert report["zlib"] is True
    assert report["expat"] == 1
    assert report["gc_enabled"] is False
    assert report["collections"] == [0, 0, 0]
    assert report["uninterned"] == {"_frozen_importlib": [], "stat": []}


@pytest.mark.parametrize("toolchain", ["a linker without --wrap", "no nm"])
def test_a_toolchain_without_the_trimmed_start_still_builds_the_launcher(
    package: Path, tmp_path: Path, toolchain: str
) -> None:
    """ocirt/_shim/build_launcher.py links the trimmed start (the wrappers of
    CPython's start, the linker script, static archives) where it can: a
    linker that refuses any of it gets the plain link; without nm, which
    tells whether libpython has the wrapped symbols, none are wrapped.
    Either way the launcher is compiled and works."""
    if toolchain == "no nm":
        env = {"NM": str(tmp_path / "no-such-nm")}
    else:
        compiler = tmp_path / "cc-without-wrap"
        compiler.write_text(
            "#!/bin/sh\n"
            'for arg in "$@"; do case $arg in -Wl,--wrap=*) exit 1;; esac; done\n'
            f'exec {shutil.which("cc") or "cc"} "$@"\n'
        )
        compiler.chmod(0o755)
        env = {"CC": str(compiler)}
    target = tmp_path / "launcher"
    subprocess.run(
        [sys.executable, "-m", "ocirt.launcher", str(target)],
        cwd=package, env={**os.environ, **env}, check=True,
    )  # fmt: skip
    assert _compiled(target)
    done = subprocess.run(
        [str(target), "--root", str(tmp_path / "root"), "state", "nope"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert "container does not exist" in done.stderr
