"""Compiled seccomp programs kept on disk, keyed by the profile's content.

Compiling a manager's profile (docker's, podman's, a kubelet's RuntimeDefault:
~350 rules) with libseccomp costs ~16 ms of CPU, three times what the rest of
the container's init costs; a node runs the same few profiles over and over.
So ``compile_filter`` first looks for the program compiled from the very same
profile: the key is a SHA-256 of the profile as JSON, the libseccomp version
and the size and mtime of ``ocirt/linux/seccomp.py`` (the compiler, with its
-ENOSYS stub), so another library, an upgrade or an edit compiles afresh.  The
native architecture is the machine's, and the cache directory is the machine's.
crun keeps such a cache too.

The cache lives outside ``--root`` (as the schema-check verdicts,
``ocirt.process.parent.validation_cache_dir``): ``/var/cache/ocirt/seccomp``
for root, ``$XDG_CACHE_HOME/ocirt/seccomp`` (or ``~/.cache``) for a rootless
runtime.  A program is only taken from a regular file, not through a
symlink, owned by the runtime's user and writable by nobody else, in a
directory made 0700: whoever could write it could already replace ocirt
itself.  Files are written whole and renamed into place, so a reader sees a
whole program or none.  Any failure to read or write the cache only means a
compile: the cache never fails a create or an exec.

Runs in the runtime before the fork (the init is past pivot_root when it
needs the program, and its paths are then the container's).
"""

from __future__ import annotations

import _struct as struct  # C: struct.py, not in the code bundle, would finish the start
import posix  # not os (~1.5 ms of imports that exec, a probe, does without)
import stat

from ocirt import _fastjson
from ocirt.linux import seccomp

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# Fields of linux.seccomp the program does not depend on: where and with what
# the runtime sends a notify listener (per container, for some managers).
NOT_COMPILED = frozenset({"listenerPath", "listenerMetadata"})
# Entries kept: a node runs a few profiles over and over, but every distinct
# profile (a fuzzer's, a pod's own) adds one (~3 kB for docker's): past this
# many, the oldest written go (they are compiled again if they come back).
MAX_ENTRIES = 64
# Bump when the file format or the meaning of a key changes.
FORMAT = b"ocirt-seccomp-program 1\n"
_HEADER = struct.Struct("=I")  # the load flags, then the program


def cache_dir() -> str:
    if posix.geteuid() == 0:
        return "/var/cache/ocirt/seccomp"
    import os  # rootless: the environment, ~

    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "ocirt", "seccomp")


def compile_filter(config: dict[str, Any], directory: str | None = None) -> seccomp.CompiledFilter:
    """``seccomp.compile_filter(config)``, from the cache when it holds this profile's program.

    A profile that does not compile raises as ``seccomp.compile_filter`` does
    (and is not cached).
    """
    path = f"{(directory or cache_dir()).rstrip('/')}/{_key(config)}"
    compiled = _read(path)
    if compiled is None:
        compiled = seccomp.compile_filter(config)
        _write(path, compiled)
    return compiled


def _key(config: dict[str, Any]) -> str:
    from _sha256 import sha256  # built in: hashlib would load OpenSSL (~2 ms)

    from ocirt._shim._ocirt_shim import lib

    digest = sha256(FORMAT)
    digest.update(b"%d\0" % lib.ocirt_scmp_version())
    digest.update(_compiler_stamp())
    program_fields = {k: v for k, v in config.items() if k not in NOT_COMPILED}
    digest.update(_fastjson.dumps(program_fields, compact=True).encode())
    return digest.hexdigest()


def _compiler_stamp() -> bytes:
    """The compiler's identity: its source file's size and mtime."""
    try:
        st = posix.stat(seccomp.__file__ or "")
    except (OSError, TypeError):
        return b"unknown\0"
    return b"%d:%d\0" % (st.st_size, st.st_mtime_ns)


def _read(path: str) -> seccomp.CompiledFilter | None:
    try:
        fd = posix.open(path, posix.O_RDONLY | posix.O_NOFOLLOW | posix.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = posix.fstat(fd)
        if not _trusted(st):
            return None
        data = posix.read(fd, st.st_size + 1)
    except OSError:
        return None
    finally:
        posix.close(fd)
    return _decode(data)


def _trusted(st: posix.stat_result) -> bool:
    """A regular file of ours that only we may write."""
    return stat.S_ISREG(st.st_mode) and st.st_uid == posix.geteuid() and not st.st_mode & 0o022


def _decode(data: bytes) -> seccomp.CompiledFilter | None:
    start = len(FORMAT) + _HEADER.size
    program = data[start:]
    if not data.startswith(FORMAT) or not program or len(program) % 8:
        return None  # not a whole program of this format: compile instead
    (flags,) = _HEADER.unpack_from(data, len(FORMAT))
    return seccomp.CompiledFilter(program, flags)


def _write(path: str, compiled: seccomp.CompiledFilter) -> None:
    """Store COMPILED at PATH (whole, then renamed into place); errors are ignored.
    posix, not os, here too: a miss must not cost create the import of os."""
    from ocirt.linux import pathnames

    # A random part: two runtimes in different pid namespaces share pids.
    tmp = f"{path}.{posix.getpid()}.{posix.urandom(4).hex()}.tmp"
    try:
        pathnames.makedirs(pathnames.dirname(path), 0o700)
        flags = posix.O_WRONLY | posix.O_CREAT | posix.O_EXCL | posix.O_NOFOLLOW | posix.O_CLOEXEC
        fd = posix.open(tmp, flags, 0o600)
    except OSError:
        return
    try:
        data = FORMAT + _HEADER.pack(compiled.flags) + compiled.program
        try:
            if posix.write(fd, data) != len(data):
                raise OSError("short write")
        finally:
            posix.close(fd)
        posix.rename(tmp, path)
        _evict_oldest(pathnames.dirname(path), MAX_ENTRIES)
    except OSError:
        try:
            posix.unlink(tmp)  # ours: made above with O_EXCL
        except OSError:
            pass


def _evict_oldest(directory: str, keep: int) -> None:
    """Remove all but the KEEP most recently written entries of DIRECTORY
    (a cache miss's cost: the hit's path does not list the directory)."""
    entries = []
    for name in posix.listdir(directory):
        if len(name) != 64 or name.endswith(".tmp"):  # a writer's temporary file, not an entry
            continue
        try:
            entries.append((posix.lstat(f"{directory}/{name}").st_mtime_ns, name))
        except OSError:
            continue  # removed meanwhile by another runtime
    entries.sort(reverse=True)
    for _, name in entries[keep:]:
        try:
            posix.unlink(f"{directory}/{name}")
        except OSError:
            pass
