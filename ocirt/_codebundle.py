"""ocirt's compiled modules in one file, served to the launcher's imports.

Every ``import`` through Python's path finder costs ~40 µs of machinery
before the module's own code runs: the finder's directory cache, five
candidate suffixes, ``cache_from_source``, a stat of the source, an open and
a read of the ``.pyc`` and the checks of its header.  ``create`` imports ~35
of ocirt's modules (~1.3 ms of it), the short commands ~7.  Here the
launcher (``ocirt.launcher``) puts one finder in front that looks a module
up in an index, stats its source once and reads its code object from this
bundle with one ``pread``.

The bundle lives next to the ``.pyc`` files (``ocirt/__pycache__/``).  The
package build writes one into the wheel whose entries are *unstamped*:
their sources' paths are relative and their mtimes unknown, since pip
writes the installed files with new ones.  The launcher's entry lines
(``install(refresh=True)``) bring a missing, unstamped or outdated bundle
up to date on the first run that can write the package directory
(``rewrite``): a module whose source still has the content the build
compiled (its SHA-256, kept in the index) keeps its code and gets the
installed file's path, mtime and size; any other is compiled again.  So
the bundle always holds the installed modules, like a ``.pyc``.  By hand::

    python -m ocirt.launcher            # writes a launcher, then the bundle

Its layout: the interpreter's bytecode magic (4 bytes), the optimization
level (1 byte), the index's length (4 bytes, little endian), the index
(``marshal``: ``{module: (source path, is package, mtime_ns, size, offset,
length)}``, offsets from the end of the index, and under the key ``""``
``{module: SHA-256 of its source}``), then each module's marshalled code
object.

Never stale: a module whose source's mtime or size differs from the index's,
or that the index does not list, is left to the path finder (which reads
the source or its ``.pyc`` as usual), so an edited checkout runs what it
says.  A missing bundle, or one of another interpreter, is not installed.

Besides ocirt's modules the bundle lists the few others that ``create``
loads from files: the extension modules ``_cffi_backend``, ``_json`` and
the shim (entries without code: loaded from their origin by ``_imp``), and
the ``encodings`` modules a text file needs.  With them, the compiled
launcher (``ocirt/_shim/launcher.c``) runs the lifecycle's commands on the
interpreter's core phase alone: it executes this module out of the bundle
and calls ``boot()``, which puts the finder in place together with
``FinishingFinder``, the last resort that completes the interpreter's start
(``finish_start``) when a module is not in the bundle.

The container's init and exec's child stop importing before they enter the
container (``ocirt.process.common.seal_imports``): that removes this finder
too and closes the bundle, so nothing of it is reachable from inside.

Imports nothing but built-in modules: it runs before any of ocirt's, and
under the compiled launcher before the path finder exists.
"""

import _imp
import marshal
import posix
import sys

BUNDLE_NAME = f"bundle.{sys.implementation.cache_tag}.bin"
_HEADER = 9  # magic (4), optimize (1), index length (4)
# Modules outside the package that the bundle lists too (see above).
EXTRA_MODULES = (
    "_cffi_backend", "_json", "ocirt._shim._ocirt_shim",
    "encodings", "encodings.aliases", "encodings.utf_8",
)  # fmt: skip
_EXTENSION = -1  # an entry's offset for an extension module: no code in the bundle
_UNSTAMPED = -1  # an entry's mtime in a bundle written by the package build
_DIGESTS = ""  # the index's key for the sources' digests (no module has this name)

_ModuleSpec = sys.modules["_frozen_importlib"].ModuleSpec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from importlib.machinery import ModuleSpec
    from types import CodeType, ModuleType


def bundle_path(package_dir: str) -> str:
    return f"{package_dir}/__pycache__/{BUNDLE_NAME}"


class BundleFinder:
    """A meta path finder and loader for the modules of one bundle."""

    def __init__(self, path: str, fd: int, index: "dict[str, tuple]", data_start: int) -> None:
        self.path = path
        self.fd = fd
        self.index = index
        self.data_start = data_start  # the index's offsets count from here

    def find_spec(self, name: str, path: object = None, target: object = None) -> object:
        entry = self.index.get(name)
        if entry is None:
            if name == "_signal":  # built-in, but its state comes with the main phase
                finish_start()
            return None
        origin, is_package, mtime_ns, size, offset, length = entry[:6]
        try:
            st = posix.stat(origin)
        except OSError:
            return None
        if st.st_mtime_ns != mtime_ns or st.st_size != size:
            return None  # edited since: the path finder compiles the source
        spec = _ModuleSpec(
            name,
            self,
            origin=origin,
            loader_state=None if offset == _EXTENSION else (self.data_start + offset, length),
            is_package=is_package,
        )
        spec.has_location = True  # __file__ = origin, as the path finder sets it
        # __cached__: the compiled file (set here: in the launcher's core phase
        # the default would ask the path machinery, which is not there yet).
        spec.cached = self.path if offset != _EXTENSION else origin
        if is_package:
            spec.submodule_search_locations = [origin.rpartition("/")[0]]
        return spec

    def create_module(self, spec: "ModuleSpec") -> "ModuleType | None":
        if spec.loader_state is None:  # an extension module
            return _imp.create_dynamic(spec)
        return None  # the default module object

    def exec_module(self, module: "ModuleType") -> None:
        state = module.__spec__.loader_state  # type: ignore[union-attr]
        if state is None:
            _imp.exec_dynamic(module)
        else:
            exec(self._code(state), module.__dict__)

    def get_resource_reader(self, fullname: str) -> object:
        """importlib.resources' reader of a package served from here: its files
        beside its source, as the path finder's loader reads them (the schemas)."""
        from importlib.readers import FileReader
        from types import SimpleNamespace

        return FileReader(SimpleNamespace(path=self.index[fullname][0]))  # type: ignore[arg-type]

    def _code(self, state: "tuple[int, int]") -> "CodeType":
        offset, length = state
        data = posix.pread(self.fd, length, offset)
        if len(data) != length:
            raise ImportError(f"{BUNDLE_NAME}: truncated at offset {offset}")
        return marshal.loads(data)


def install(package_dir: "str | None" = None, refresh: bool = False) -> bool:
    """Put the bundle of PACKAGE_DIR (default: this package's) in front of
    sys.meta_path; False if there is none or it is not this interpreter's.
    REFRESH: first write it (see ``rewrite``) if it is missing or older than
    this module's source, and the package directory can be written."""
    if package_dir is None:
        package_dir = __file__.rpartition("/")[0]
    if any(isinstance(f, BundleFinder) for f in sys.meta_path):
        return True
    opened = _open(bundle_path(package_dir))
    if refresh and (opened is None or not _is_current(opened[1], "ocirt._codebundle")):
        if opened is not None:
            posix.close(opened[0])
        try:
            rewrite(package_dir)
        except (OSError, SyntaxError):  # unwritable, or a broken source: run without it
            pass
        opened = _open(bundle_path(package_dir))
    if opened is None:
        return False
    fd, index, data_start = opened
    sys.meta_path.insert(0, BundleFinder(bundle_path(package_dir), fd, index, data_start))
    return True


def _open(path: str) -> "tuple[int, dict, int] | None":
    """(fd, index, data start) of the bundle at PATH, if it is this interpreter's."""
    try:
        fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC)
    except OSError:
        return None
    try:
        head = posix.read(fd, _HEADER)
        magic = sys.modules["_frozen_importlib_external"].MAGIC_NUMBER
        if len(head) != _HEADER or head[:4] != magic or head[4] != _optimize_level():
            raise ValueError("not a bundle of this interpreter")
        index_length = int.from_bytes(head[5:], "little")
        index = marshal.loads(posix.read(fd, index_length))
        if not isinstance(index, dict):
            raise ValueError("not a bundle")
    except (OSError, ValueError, EOFError, TypeError):
        posix.close(fd)
        return None
    return fd, index, _HEADER + index_length


def _is_current(index: "dict[str, tuple]", name: str) -> bool:
    """NAME's entry matches its source file as it is now."""
    entry = index.get(name)
    if not entry:
        return False
    try:
        st = posix.stat(entry[0])
    except OSError:
        return False
    return st.st_mtime_ns == entry[2] and st.st_size == entry[3]


def boot(path: str, fd: int, index: "dict[str, tuple]", data_start: int) -> None:
    """The compiled launcher's entry, in the interpreter's core phase: serve
    imports from the bundle it opened, and finish the start for anything else."""
    import builtins

    builtins.open = _open_on_first_call  # the main phase would set _io.open
    sys.meta_path.insert(0, BundleFinder(path, fd, index, data_start))
    sys.meta_path.append(FinishingFinder())


def _open_on_first_call(*args: object, **kwargs: object) -> object:
    """builtins.open until something opens a file: then _io.open, imported only
    then (its module's types, ~0.2 ms: the short commands use posix.open)."""
    import _io
    import builtins

    builtins.open = _io.open
    return _io.open(*args, **kwargs)  # type: ignore[call-overload]


class FinishingFinder:
    """Last on sys.meta_path while only the core phase has run: a module that
    neither the bundle nor the built-in and frozen importers have comes from
    the path finder, which finishing the start puts in place."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> object:
        finish_start()  # removes this finder, appends the path finder
        for finder in sys.meta_path:
            if getattr(finder, "__name__", "") == "PathFinder":
                return finder.find_spec(name, path, target)
        return None


def finish_start() -> None:
    """Complete the interpreter's start if the compiled launcher stopped at its
    core phase: sys.stdout and sys.stderr, sys.path and the path finder,
    signal handlers.  Call it before using any of them."""
    if "_ocirt_launcher" in sys.builtin_module_names and "stdout" not in sys.__dict__:
        import _ocirt_launcher

        sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, FinishingFinder)]
        _ocirt_launcher.finish()


def uninstall() -> None:
    """Remove the finder and close the bundle (see seal_imports)."""
    for finder in [f for f in sys.meta_path if isinstance(f, BundleFinder)]:
        sys.meta_path.remove(finder)
        posix.close(finder.fd)


def _optimize_level() -> int:
    return sys.flags.optimize


# -- writing (build and install time) ------------------------------------------------
def write(package_dir: str, package: str = "ocirt", *, unstamped: bool = False) -> str:
    """Compile every module under PACKAGE_DIR into its bundle; returns the bundle's path.

    UNSTAMPED (the package build): sources named relative to the package's
    parent, no mtimes, no modules from outside the package (their files are
    where the installing interpreter has them): ``rewrite`` stamps it."""
    return _write(package_dir, package, {}, unstamped)


def rewrite(package_dir: str, package: str = "ocirt") -> str:
    """Rewrite PACKAGE_DIR's bundle for its sources as they are now, reusing
    the code of every module whose source has the content it was compiled
    from (an unstamped bundle's, or one an edit left partly stale)."""
    import os

    target = bundle_path(package_dir)
    if not os.access(os.path.dirname(target), os.W_OK) and not os.access(package_dir, os.W_OK):
        raise PermissionError(f"cannot write {target}")  # before compiling anything
    return _write(package_dir, package, _reusable(target), False)


def _reusable(path: str) -> "dict[bytes, bytes]":
    """{source digest: marshalled code} of the bundle at PATH (empty if unusable)."""
    opened = _open(path)
    if opened is None:
        return {}
    fd, index, data_start = opened
    try:
        found = {}
        for name, digest in index.get(_DIGESTS, {}).items():
            offset, length = index[name][4:6]
            blob = posix.pread(fd, length, data_start + offset)
            if len(blob) == length:
                found[digest] = blob
        return found
    except (OSError, KeyError, ValueError, TypeError, AttributeError):
        return {}
    finally:
        posix.close(fd)


def _relocated(blob: bytes, path: str) -> bytes:
    """BLOB's code with PATH as its file name (tracebacks), as a .pyc's gets on load."""
    code = marshal.loads(blob)
    _imp._fix_co_filename(code, path)
    return marshal.dumps(code)


def _write(package_dir: str, package: str, reuse: "dict[bytes, bytes]", unstamped: bool) -> str:
    import os

    try:  # the builtin module: hashlib loads OpenSSL
        from _sha256 import sha256
    except ImportError:
        from hashlib import sha256

    index: dict[str, tuple] = {}
    digests: dict[str, bytes] = {}
    blobs: list[bytes] = []
    offset = 0  # from the end of the index
    parent = os.path.dirname(os.path.abspath(package_dir))
    extras = [] if unstamped else _extra_modules()
    for name, path in _modules(package_dir, package) + extras:
        st = os.stat(path)
        is_package = path.endswith("/__init__.py")
        if not path.endswith(".py"):  # an extension module: its file is the module
            index[name] = (path, is_package, st.st_mtime_ns, st.st_size, _EXTENSION, 0)
            continue
        with open(path, "rb") as f:
            source = f.read()
        digest = sha256(source).digest()
        origin = os.path.relpath(path, parent) if unstamped else path
        if digest in reuse:
            blob = _relocated(reuse[digest], origin)
        else:
            blob = marshal.dumps(_compile(source, origin))
        mtime_ns = _UNSTAMPED if unstamped else st.st_mtime_ns
        index[name] = (origin, is_package, mtime_ns, st.st_size, offset, len(blob))
        digests[name] = digest
        blobs.append(blob)
        offset += len(blob)
    index[_DIGESTS] = digests  # type: ignore[assignment]
    index_bytes = marshal.dumps(index)
    target = bundle_path(package_dir)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    tmp = f"{target}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        magic = sys.modules["_frozen_importlib_external"].MAGIC_NUMBER
        f.write(magic + bytes([_optimize_level()]) + len(index_bytes).to_bytes(4, "little"))
        f.write(index_bytes)
        for blob in blobs:
            f.write(blob)
    os.rename(tmp, target)
    return target


def _compile(source: bytes, path: str) -> "CodeType":
    """The module's code; ``from __future__ import annotations`` as a compiler flag only.

    The statement does two things: it tells the compiler to keep annotations
    as strings, and at run time it imports ``__future__`` (~0.1-0.3 ms, the
    first time) to bind the name ``annotations``, which no module uses.  The
    bundle keeps the first and drops the second.
    """
    import __future__  # noqa: I001 (the module, not the statement)
    import ast

    tree = ast.parse(source, path)
    flags = 0
    body = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            for alias in node.names:
                flags |= getattr(__future__, alias.name).compiler_flag
        else:
            body.append(node)
    tree.body = body
    return compile(tree, path, "exec", flags=flags, dont_inherit=True)


def _extra_modules() -> "list[tuple[str, str]]":
    """(name, file) of EXTRA_MODULES this interpreter finds (the shim: if built)."""
    from importlib.util import find_spec

    found = []
    for name in EXTRA_MODULES:
        spec = find_spec(name)
        if spec is not None and spec.has_location and spec.origin:
            found.append((name, spec.origin))
    return found


def _modules(package_dir: str, package: str) -> "list[tuple[str, str]]":
    """(dotted name, absolute source path) of every module of the package, sorted."""
    import os

    found = []
    root = os.path.abspath(package_dir)
    for directory, dirs, files in os.walk(root):
        dirs[:] = sorted(
            d for d in dirs if os.path.exists(os.path.join(directory, d, "__init__.py"))
        )
        relative = os.path.relpath(directory, root)
        prefix = package if relative == "." else package + "." + relative.replace(os.sep, ".")
        for file in sorted(files):
            if not file.endswith(".py"):
                continue
            stem = file[:-3]
            name = prefix if stem == "__init__" else f"{prefix}.{stem}"
            found.append((name, os.path.join(directory, file)))
    return found
