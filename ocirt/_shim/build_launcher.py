"""Compiles the compiled launcher, ``ocirt/_shim/launcher.c``: used at build and install time.

Two layouts, one C source:

* **fixed** (``python -m ocirt.launcher TARGET``): the interpreter, the code
  bundle and ``sys.path`` of the running installation, as absolute paths.
* **relocatable** (the package build: ``setup.py``'s ``build_scripts``): a
  wheel does not know where it will be installed, so the launcher finds its
  installation at run time from its own file (``/proc/self/exe``): the
  ``site-packages`` directory that holds ``ocirt`` (tried in the few places
  the interpreter's install schemes put it relative to their ``bin``:
  ``SITE_DIRS``), the interpreter beside it (a venv's ``bin/python3``) or
  the one the build ran on, the standard library of that interpreter.  An
  editable build also names the checkout (``package_parent``).

Imports nothing of ocirt: ``setup.py`` loads it by path, before the package
is built.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "launcher.c")
# The lines both launchers run when the code bundle cannot start them
# (ocirt.launcher.ENTRY; the compiled launcher's OCIRT_ENTRY): put the bundle
# in place, writing it first if it is missing or older than the installed
# modules, then ocirt's fast front end.
ENTRY = """from ocirt._codebundle import install
install(refresh=True)
from ocirt.fastcli import main
main()
"""
# bin/ocirt where the package build cannot compile the launcher (pip puts the
# installing interpreter on the #! line).
SCRIPT = (
    """#!python
# ocirt's plain launcher: the SLOW PATH, ~10 ms more per command than the
# compiled one (ocirt/_shim/launcher.c), which the package build could not
# compile here (no C compiler, or no static libpython: Debian's python3-dev).
# Reinstall with them to get it; `ocirt --version` names the launcher in use.
"""
    + ENTRY
)
# Install schemes whose scripts and site-packages directories are fixed
# relative to each other (a venv, --user, --prefix, Debian's /usr/local).
SCHEMES = ("venv", "posix_venv", "posix_prefix", "posix_user", "posix_local", "deb_system")


# The deep-frozen modules' objects (libpython's deepfreeze.o) in an output
# section of their own after the rest of the static data, which the launcher
# prefaults without them (launcher.c, populate_static_data): with the
# wrappers, a short command writes to few of their pages.
DEEPFROZEN_SECTION = """SECTIONS
{{
  ocirt_deepfrozen : {{
    ocirt_deepfrozen_start = .;
    *{library}:deepfreeze.o(.data .data.*)
    ocirt_deepfrozen_end = .;
  }}
}}
INSERT AFTER .data;
"""


# Libraries of libpython's built-in modules (zlib, pyexpat) linked in from
# their static archives where the system has them: each shared library costs
# every command its mapping and relocation by the dynamic loader and ~5 page
# faults (~0.03 ms of CPU apiece).  libm and libc stay shared.
STATIC_LIBRARIES = ("z", "expat")


class LauncherUnavailable(Exception):
    """This interpreter offers nothing to link a launcher against."""


def static_libpython() -> str:
    config = sysconfig.get_config_var
    library = os.path.join(config("LIBPL") or "", config("LIBRARY") or "")
    if not os.path.isfile(library) or not library.endswith(".a"):
        raise LauncherUnavailable(f"no static libpython ({library or 'LIBRARY unset'})")
    return library


def cpython_wraps(library: str) -> tuple[dict[str, str], list[str]]:
    """The defines and linker flags of launcher.c's wrappers of CPython's start.

    They redirect libpython's own calls (``-Wl,--wrap``): the deep-frozen
    modules interned when first loaded, not all at start, and no cyclic
    collector from the first allocation (see launcher.c).  Only for CPython
    3.11, whose _Py_Deepfreeze_Init only interns (3.12's also initializes the
    code objects), and only if the archive defines every symbol they name;
    else none (the launcher starts as CPython does).
    """
    if sys.version_info[:2] != (3, 11):
        return {}, []
    symbols = archive_symbols(library)
    getters = sorted(
        name[len("_Py_get_") : -len("_toplevel")]
        for name in symbols.get("deepfreeze.o", ())
        if name.startswith("_Py_get_") and name.endswith("_toplevel")
    )
    needed = {
        "deepfreeze.o": "_Py_Deepfreeze_Init",
        "codeobject.o": "_PyStaticCode_InternStrings",
        "gcmodule.o": "_PyGC_InitState",
    }
    if not getters or any(name not in symbols.get(member, ()) for member, name in needed.items()):
        return {}, []
    wrapped = ["_Py_Deepfreeze_Init", "_PyGC_InitState"]
    wrapped += [f"_Py_get_{name}_toplevel" for name in getters]
    defines = {
        "OCIRT_CPYTHON_WRAPS": "1",
        "OCIRT_DEEPFROZEN_MODULES(X)": " ".join(f"X({name})" for name in getters),
    }
    return defines, [f"-Wl,--wrap={name}" for name in wrapped]


def archive_symbols(library: str) -> dict[str, set[str]]:
    """The global symbols each member of the static LIBRARY defines ({} without nm)."""
    try:
        listing = subprocess.run(
            [os.environ.get("NM", "nm"), "--defined-only", "-g", library],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return {}
    members: dict[str, set[str]] = {}
    member: set[str] = set()
    for line in listing.splitlines():
        if line.endswith(":"):
            member = members.setdefault(line[:-1], set())
        elif line.strip():
            member.add(line.split()[-1])
    return members


def base_python() -> str:
    """The interpreter a venv (the build's own, say) was made from."""
    return os.path.abspath(getattr(sys, "_base_executable", "") or sys.executable)


def interpreter_paths(python: str, code: str) -> list[str]:
    out = subprocess.run(
        [python, "-I", "-S", "-c", f"import json, sys; print(json.dumps({code}))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)


def site_dirs() -> list[str]:
    """site-packages relative to the scripts directory, in every scheme that fixes it."""
    fake = {k: "/B" for k in ("base", "platbase", "installed_base", "installed_platbase")}
    fake["userbase"] = "/B"
    found: list[str] = []
    for scheme in SCHEMES:
        if scheme not in sysconfig.get_scheme_names():
            continue
        paths = sysconfig.get_paths(scheme, vars=fake)
        for key in ("purelib", "platlib"):
            relative = os.path.relpath(paths[key], paths["scripts"])
            if relative not in found:
                found.append(relative)
    return found


def fixed_defines(python: str, bundle: str, paths: list[str]) -> dict[str, str]:
    return {
        "OCIRT_PYTHON": c_string(python),
        "OCIRT_BUNDLE": c_string(bundle),
        "OCIRT_PATHS": c_strings(paths),
    }


def relocatable_defines(package_parent: str | None = None) -> dict[str, str]:
    """The run-time search: see the module's docstring."""
    python = base_python()
    defines = {
        "OCIRT_RELOCATABLE": "1",
        "OCIRT_SITE_DIRS": c_strings(site_dirs()),
        "OCIRT_BASE_PYTHON": c_string(python),
        "OCIRT_STDLIB_PATHS": c_strings(interpreter_paths(python, "sys.path")),
        "OCIRT_SYSTEM_SITE": c_strings(
            interpreter_paths(python, "__import__('site').getsitepackages()")
        ),
        "OCIRT_BUNDLE_NAME": c_string(f"bundle.{sys.implementation.cache_tag}.bin"),
    }
    if package_parent:
        defines["OCIRT_PACKAGE_PARENT"] = c_string(os.path.abspath(package_parent))
    return defines


def compile_launcher(target: str, defines: dict[str, str]) -> None:
    """Compile launcher.c to TARGET with DEFINES (a layout's) plus the shared ones."""
    from importlib.util import MAGIC_NUMBER

    if os.environ.get("OCIRT_LAUNCHER") == "script":  # asked for: a packager's choice, tests
        raise LauncherUnavailable("OCIRT_LAUNCHER=script")
    library = static_libpython()
    defines = {**defines, "OCIRT_MAGIC": c_string(MAGIC_NUMBER), "OCIRT_ENTRY": c_string(ENTRY)}
    with tempfile.TemporaryDirectory() as work:
        trim_defines, trim_flags = trimmed_start(library, work)
        try:
            _compile(target, work, library, {**defines, **trim_defines}, trim_flags,
                     libraries(static=True), quiet=True)  # fmt: skip
        except subprocess.CalledProcessError:
            # A toolchain that takes neither the wrappers, the linker script
            # nor the static archives: the launcher starts as CPython does.
            _compile(target, work, library, defines, [], libraries(static=False))


def trimmed_start(library: str, work: str) -> tuple[dict[str, str], list[str]]:
    """The defines and linker flags of launcher.c's wrappers (cpython_wraps),
    with the linker script that puts the deep-frozen objects apart (written
    to WORK); none where the wrappers are not for this libpython."""
    defines, flags = cpython_wraps(library)
    if not flags:
        return {}, []
    script = os.path.join(work, "deepfrozen.ld")
    with open(script, "w") as f:
        f.write(DEEPFROZEN_SECTION.format(library=os.path.basename(library)))
    return {**defines, "OCIRT_DEEPFROZEN_SECTION": "1"}, [*flags, f"-Wl,-T,{script}"]


def libraries(static: bool) -> list[str]:
    """The libraries libpython links with; STATIC: those of STATIC_LIBRARIES
    from their archives where the system has them (their symbols kept out
    of the launcher's exported ones)."""
    config = sysconfig.get_config_var
    flags = list(
        dict.fromkeys(" ".join(config(k) or "" for k in ("LIBS", "MODLIBS", "SYSLIBS")).split())
    )
    if not static:
        return flags
    linked: list[str] = []
    archives: list[str] = []
    for flag in flags:
        wanted = flag.startswith("-l") and flag[2:] in STATIC_LIBRARIES
        archive = static_archive(flag[2:]) if wanted else None
        if archive:
            linked.append(archive)
            archives.append(os.path.basename(archive))
        else:
            linked.append(flag)
    if archives:
        linked.append("-Wl,--exclude-libs," + ":".join(archives))
    return linked


def static_archive(name: str) -> str | None:
    """The compiler's lib<NAME>.a, if it has one."""
    try:
        found = subprocess.run(
            [os.environ.get("CC", "cc"), f"-print-file-name=lib{name}.a"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return found if os.path.isabs(found) and os.path.isfile(found) else None


def _compile(
    target: str,
    work: str,
    library: str,
    defines: dict[str, str],
    link_flags: list[str],
    libs: list[str],
    quiet: bool = False,
) -> None:
    config = sysconfig.get_config_var
    header = os.path.join(work, "launcher_config.h")
    with open(header, "w") as f:
        f.writelines(f"#define {name} {value}\n" for name, value in defines.items())
    subprocess.run(
        [
            os.environ.get("CC", "cc"), "-O2", "-DNDEBUG", "-no-pie", "-Wall", "-s",
            f"-I{config('INCLUDEPY')}", f'-DOCIRT_CONFIG="{header}"',
            "-o", target, SOURCE, *link_flags,
            # Every object: extension modules (the shim, cffi) link to the
            # interpreter's symbols, as they do to /usr/bin/python3's.
            "-Wl,--whole-archive", library, "-Wl,--no-whole-archive",
            *(config("LINKFORSHARED") or "").split(), *libs,
        ],
        check=True,
        capture_output=quiet,
    )  # fmt: skip


def c_string(value: str | bytes) -> str:
    """A C string literal of VALUE (a str as the file system encodes it)."""
    raw = os.fsencode(value) if isinstance(value, str) else value
    return '"' + "".join(f"\\{b:03o}" for b in raw) + '"'


def c_strings(values: list[str]) -> str:
    """The items of a C array initializer, each with its comma (the source adds NULL)."""
    return "".join(f"{c_string(v)}, " for v in values)
