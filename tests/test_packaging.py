"""The package build (setup.py's steps) gives a working, fast ocirt wherever it is installed.

A copy of the source tree is built with ``setup.py build`` (offline, with
this venv's setuptools and cffi) and laid out as pip lays out a wheel in a
venv: ``bin/ocirt`` from build_scripts, the package in
``lib/python3.11/site-packages``, the man pages under ``share/``; the
dependencies are this venv's, linked in.  What a real wheel holds (the
``.data`` directories, RECORD) is checked by ``scripts/check-package.sh``
in CI, which builds one with ``python -m build`` and runs the demo and the
lifecycle tests with it.
"""

from __future__ import annotations

import json
import marshal
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from conftest import ok

from ocirt import _codebundle
from ocirt.cli import COMMANDS, GLOBAL_FLAGS

REPO = Path(__file__).resolve().parents[1]
SITE = f"lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages"
# This venv's site-packages entries that are not the runtime's dependencies.
NOT_DEPENDENCIES = re.compile(
    r"^(ocirt|__editable__|_?_?pycache|pip|setuptools|_distutils_hack|pkg_resources|"
    r"distutils-precedence|ruff|_?pytest|hypothesis|_hypothesis)"
)


def _copy_sources(target: Path) -> None:
    """The files git tracks, as they are in the working tree (a fresh clone's)."""
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (os.fsdecode(n) for n in listed)):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def _build(tmp: Path, env: dict[str, str] | None = None) -> Path:
    sources = tmp / "src"
    _copy_sources(sources)
    steps = ["build_py", "build_ext", "build_scripts", "build_man"]
    subprocess.run(
        [sys.executable, "setup.py", "-q", *steps],
        cwd=sources,
        env={**os.environ, **(env or {})},
        capture_output=True,
        check=True,
    )
    return sources


def _install(sources: Path, prefix: Path) -> Path:
    """Lay the build out in a new venv as pip installs a wheel; returns bin/ocirt."""
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", str(prefix)], check=True)
    site = prefix / SITE
    lib = next((sources / "build").glob("lib.*"))
    shutil.copytree(lib / "ocirt", site / "ocirt")
    shutil.copytree(sources / "build" / "share", prefix / "share")
    scripts = next((sources / "build").glob("scripts-*"))
    shutil.copy2(scripts / "ocirt", prefix / "bin" / "ocirt")
    ours = Path(sysconfig.get_paths()["purelib"])
    for entry in ours.iterdir():
        if not NOT_DEPENDENCIES.match(entry.name):
            (site / entry.name).symlink_to(entry)
    return prefix / "bin" / "ocirt"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not Path("/usr/bin/python3").exists() or shutil.which("cc") is None:
        pytest.skip("needs /usr/bin/python3 and a C compiler")
    return _build(tmp_path_factory.mktemp("package"))


@pytest.fixture
def installed(built: Path, tmp_path: Path) -> Path:
    return _install(built, tmp_path / "venv")


def _version(ocirt: Path) -> dict[str, str]:
    out = ok(subprocess.run([str(ocirt), "--version"], capture_output=True, text=True))
    return dict(line.split(": ", 1) for line in out.splitlines()[1:])


def _is_elf(path: Path) -> bool:
    return path.read_bytes()[:4] == b"\x7fELF"


def test_the_build_installs_the_compiled_launcher_and_it_finds_its_venv(
    built: Path, installed: Path
) -> None:
    """bin/ocirt is the compiled launcher, relocatable: nothing of the build's
    paths in it; it runs this venv's package (not the checkout's)."""
    assert _is_elf(installed)
    # The build tree is named nowhere (a static library it links may name its
    # own sources, libexpat's "../../src/lib/xmlparse.c" in an assertion).
    assert os.fsencode(built) not in installed.read_bytes()
    version = _version(installed)
    assert version["launcher"] == "compiled"
    assert re.fullmatch(r"\d+\.\d+\.\d+", version["libseccomp"])


def test_a_moved_venv_still_runs_fast(installed: Path, tmp_path: Path) -> None:
    """The launcher finds its installation from its own path (/proc/self/exe),
    so a venv moved elsewhere (pip's scripts are not) keeps the fast start."""
    moved = tmp_path / "elsewhere"
    os.rename(installed.parent.parent, moved)
    # A venv's python is a symlink to the base interpreter: still valid after the move.
    assert _version(moved / "bin" / "ocirt")["launcher"] == "compiled"


def test_the_first_run_stamps_the_bundle_the_build_wrote(installed: Path, tmp_path: Path) -> None:
    """The wheel's bundle names its sources relatively, with no mtime (pip writes
    new ones); the first run checks each source's SHA-256, stamps the entries
    with the installed files, and the next runs open no .py or .pyc at all."""
    package = installed.parent.parent / SITE / "ocirt"
    bundle = Path(_codebundle.bundle_path(str(package)))
    before = _index(bundle)
    assert before["ocirt.container"][0] == "ocirt/container.py"
    assert before["ocirt.container"][2] == -1  # unstamped
    _version(installed)
    after = _index(bundle)
    assert after["ocirt.container"][0] == str(package / "container.py")
    assert after["ocirt.container"][2] == (package / "container.py").stat().st_mtime_ns
    assert "_cffi_backend" in after  # the extension modules of this interpreter, added
    trace = tmp_path / "trace"
    subprocess.run(
        ["strace", "-f", "-e", "trace=openat", "-o", str(trace), str(installed),
         "--root", str(tmp_path / "root"), "delete", "--force", "nope"],
        check=True, capture_output=True,
    )  # fmt: skip
    opened = trace.read_text()
    assert str(bundle) in opened
    assert re.findall(r'openat\(.*\.pyc?"', opened) == []


def test_an_edited_installed_module_is_restamped(installed: Path) -> None:
    """A bundle older than the installed _codebundle.py (an upgrade, an edit)
    is rewritten by the next run: it always holds the installed modules."""
    package = installed.parent.parent / SITE / "ocirt"
    _version(installed)
    source = package / "_codebundle.py"
    source.write_text(source.read_text() + "\nEDITED = True\n")
    _version(installed)
    index = _index(Path(_codebundle.bundle_path(str(package))))
    assert index["ocirt._codebundle"][2] == source.stat().st_mtime_ns


def _index(bundle: Path) -> dict:
    data = bundle.read_bytes()
    length = int.from_bytes(data[5:9], "little")
    return marshal.loads(data[9 : 9 + length])


def test_the_schemas_travel_in_the_package(installed: Path) -> None:
    """validate finds them through importlib.resources, with the bundle's loader too."""
    package = installed.parent.parent / SITE / "ocirt"
    assert (package / "schemas" / "config-schema.json").is_file()
    bundle_dir = installed.parent.parent / "bundle"
    bundle_dir.mkdir()
    ok(subprocess.run([str(installed), "spec", "--bundle", str(bundle_dir)], capture_output=True))
    config = json.loads((bundle_dir / "config.json").read_text())
    config["process"]["args"] = ["/nonexistent-program"]
    (bundle_dir / "config.json").write_text(json.dumps(config))
    (bundle_dir / "rootfs").mkdir()
    # Validation runs (schemas found) and refuses the missing program, not the schemas.
    done = subprocess.run(
        [str(installed), "--root", str(installed.parent.parent / "root"), "create",
         "--bundle", str(bundle_dir), "packaging-test"],
        capture_output=True, text=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 1
    assert "schemas are missing" not in done.stderr
    assert "nonexistent-program" in done.stderr


def test_without_a_static_libpython_the_script_says_it_is_the_slow_path(tmp_path: Path) -> None:
    sources = _build(tmp_path, {"OCIRT_LAUNCHER": "script"})
    ocirt = _install(sources, tmp_path / "venv")
    text = ocirt.read_text()
    assert text.startswith("#!python\n")  # pip puts the installing interpreter here
    assert "SLOW PATH" in text
    ocirt.write_text(text.replace("#!python", f"#!{ocirt.parent / 'python3'}", 1))
    assert _version(ocirt)["launcher"] == "script (slow path)"


def _flag_spellings(flags: tuple) -> set[str]:
    return {("--" if len(n) > 1 else "-") + n for f in flags for n in f.names}


def test_man_pages_and_completion_come_from_the_flag_tables(built: Path) -> None:
    """Every command has its page, every flag the parser knows is in it, and the
    completion offers the same flags and `list -q`'s ids."""
    share = built / "build" / "share"
    overview = (share / "man/man8/ocirt.8").read_text()
    completion = (share / "bash-completion/completions/ocirt").read_text()
    for flag in _flag_spellings(GLOBAL_FLAGS):
        assert flag.replace("-", "\\-") in overview
    for name in COMMANDS:
        page = (share / f"man/man8/ocirt-{name}.8").read_text()
        module = __import__(f"ocirt.cli.{name}", fromlist=["FLAGS"])
        case = re.search(rf'^\s+{name}\) flags="([^"]*)"', completion, re.M)
        assert case, name
        assert set(case.group(1).split()) == _flag_spellings(module.FLAGS)
        for flag in _flag_spellings(module.FLAGS):
            assert flag.replace("-", "\\-") in page, (name, flag)
    assert "list -q" in completion
    if shutil.which("bash"):
        ok(subprocess.run(["bash", "-n", str(share / "bash-completion/completions/ocirt")]))
