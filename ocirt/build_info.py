"""What this build is: ``ocirt --version``'s lines, ``ocirt features``' annotations.

The commit (recorded by the package build, else the checkout's), the
launcher that started this process, the libseccomp the shim is linked to.
"""

from __future__ import annotations

import os


def commit() -> str:
    """The git commit recorded at install, else asked of the checkout, else 'unknown'."""
    here = os.path.dirname(__file__)
    try:
        with open(os.path.join(here, "_shim", "commit.txt")) as f:
            return f.read().strip() or "unknown"
    except OSError:
        pass
    head = os.path.join(here, os.pardir, ".git", "HEAD")
    try:
        with open(head) as f:
            ref = f.read().strip()
        if ref.startswith("ref: "):
            with open(os.path.join(os.path.dirname(head), ref[5:])) as f:
                return f.read().strip()
        return ref
    except OSError:
        return "unknown"


def launcher() -> str:
    """How this process was started: "compiled" (ocirt/_shim/launcher.c with
    its code bundle), "compiled, without its code bundle", or "script" (a #!
    script: the slow path, where the package build had no C compiler)."""
    import sys

    from ocirt import _codebundle

    if "_ocirt_launcher" not in sys.builtin_module_names:
        return "script (slow path)"
    if any(isinstance(f, _codebundle.BundleFinder) for f in sys.meta_path):
        return "compiled"
    return "compiled, without its code bundle"


def libseccomp_version() -> str:
    """The version of the libseccomp the shim runs with (as runc --version prints it)."""
    try:
        from ocirt._shim._ocirt_shim import lib
    except ImportError:
        return "unknown (the shim is not built)"
    packed = lib.ocirt_scmp_version()
    return f"{packed // 10000}.{packed // 100 % 100}.{packed % 100}"


def annotations() -> dict[str, str]:
    """``ocirt features``' annotations for this build (runc names its commit and libseccomp)."""
    from ocirt.cli import VERSION

    return {
        "io.github.ocirt.version": VERSION,
        "io.github.ocirt.commit": commit(),
        "io.github.ocirt.launcher": launcher(),
        "io.github.seccomp.libseccomp.version": libseccomp_version(),
    }
