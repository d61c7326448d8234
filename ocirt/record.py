"""A container's record: its status and the public state, with C modules only.

``ocirt.state`` (the state directory) re-exports everything here; the short
commands' fast path (``ocirt.fastcli``) imports this module alone.  Hence no
``os`` (~1 ms of imports: ``_collections_abc``, ``posixpath``, ``os.environ``),
no ``from __future__`` (an import too) and no ``typing``: ``posix`` is the C
module under ``os``.

The status is never stored: it is derived from the live init, identified by
its pid *and* its start time (field 22 of /proc/PID/stat), so a pid the
kernel has recycled is never taken for the container.
"""

import marshal
import posix

TYPE_CHECKING = False  # annotations only; quoted (no `from __future__`, see above)
if TYPE_CHECKING:
    from typing import Any

OCI_VERSION = "1.3.0"
STATE_FILE = "state.json"
START_SOCKET = "start.sock"
# What /proc/PID/exe of a created (not yet started) init reads: the stage-2
# init runs from a memfd of this name (see ocirt/process/parent.py).
STAGE2_MEMFD_NAME = "ocirt-init"

# state.json's copy in marshal's format, which the short commands read (read_record).
STATE_COPY = "state.marshal"

_READ_FLAGS = posix.O_RDONLY | posix.O_CLOEXEC
_DIR_FLAGS = posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC
CGROUP_ROOT = "/sys/fs/cgroup"  # ocirt.cgroups.CGROUP_ROOT


def check_id(container_id: str) -> None:
    """runc's rule, ^[\\w+-.]+$ (word characters, '+', '-', '.'), minus . and .."""
    if not valid_id(container_id):
        from ocirt.errors import OcirtError

        raise OcirtError("invalid container ID format")


def valid_id(container_id: str) -> bool:
    valid = bool(container_id) and all(c.isalnum() or c in "_+-." for c in container_id)
    return valid and container_id not in (".", "..")


def read_small(path: str) -> bytes:
    """The content of a /proc or cgroup file (one read: they fit in a page)."""
    fd = posix.open(path, _READ_FLAGS)
    try:
        return posix.read(fd, 65536)
    finally:
        posix.close(fd)


def _stat_fields(pid: int) -> list[bytes] | None:
    """/proc/PID/stat from field 3 (the state letter) on, or None if PID is gone."""
    try:
        stat = read_small(f"/proc/{pid}/stat")
    except OSError:
        return None
    # comm (field 2) may hold spaces and parentheses: split after the last ')'.
    return stat[stat.rindex(b")") + 2 :].split()


def process_start_time(pid: int) -> int | None:
    """Start time of PID in clock ticks since boot, or None if it is gone."""
    fields = _stat_fields(pid)
    return None if fields is None else int(fields[19])


def process_state_letter(pid: int) -> str:
    fields = _stat_fields(pid)
    return "X" if fields is None else fields[0].decode()


def init_is_alive(record: "dict[str, Any]") -> bool:
    """True while the recorded init (same pid, same start time) lives."""
    pid = record.get("pid") or 0
    if pid <= 0:
        return False
    fields = _stat_fields(pid)  # one read for both the start time and the state
    if fields is None or int(fields[19]) != record.get("init_start_time"):
        return False
    return fields[0] not in (b"Z", b"X")


def init_is_waiting(pid: int) -> bool:
    """True while the init is the stage-2 program, blocked before exec."""
    try:
        exe = posix.readlink(f"/proc/{pid}/exe")
    except OSError:
        return False
    return exe.startswith("/memfd:" + STAGE2_MEMFD_NAME)


def derive_status(record: "dict[str, Any]", paused: bool = False) -> str:
    if not init_is_alive(record):
        return "stopped"
    if paused:
        return "paused"
    if init_is_waiting(record["pid"]):
        return "created"
    return "running"


def public_state(record: "dict[str, Any]", status: str) -> "dict[str, Any]":
    """The runtime-spec state (what `ocirt state` prints and hooks read)."""
    state = {
        "ociVersion": record["ociVersion"],
        "id": record["id"],
        "pid": record["pid"] if status != "stopped" else 0,
        "status": status,
        "bundle": record["bundle"],
        "rootfs": record["rootfs"],
        "created": record["created"],
        "owner": record.get("owner", ""),
    }
    if record.get("annotations"):
        state["annotations"] = record["annotations"]
    return state


def cgroup_frozen(record: "dict[str, Any]") -> bool | None:
    """``ocirt.cgroups.is_frozen(record)`` for the fs and fs2 drivers (also under
    systemd), without importing ``ocirt.cgroups`` (os, errno, time, a driver).

    None when the record is not one of those: the caller asks ``ocirt.cgroups``.
    Like ``is_frozen``, a cgroup that is gone or unreadable is not frozen.
    tests/test_fastcli.py checks that both agree.
    """
    cg = record.get("cgroup") if "driver" not in record else record
    if not cg:
        return False
    if cg.get("driver") == "systemd":
        cg = cg.get("inner")
        if not isinstance(cg, dict):
            return None
    driver = cg.get("driver")
    try:
        if driver == "fs":
            path = (cg.get("paths") or {}).get("freezer")
            if not path:
                return False
            if read_small(path + "/freezer.state").strip() == b"THAWED":
                return False
            # FROZEN or FREEZING: frozen by us, or only through an ancestor?
            return read_small(path + "/freezer.self_freezing").strip() == b"1"
        if driver == "fs2" and isinstance(cg.get("path"), str):
            if not cg["path"].startswith(CGROUP_ROOT + "/"):
                return False  # V2Manager refuses such a path; is_frozen says "not frozen"
            return read_small(cg["path"] + "/cgroup.freeze").strip() == b"1"
    except OSError:
        return False
    return None


def remove_empty_cgroup(record: "dict[str, Any]") -> bool:
    """rmdir the cgroups ``create`` made, for the fs and fs2 drivers: True if done.

    ``delete``'s common case, without importing ``ocirt.cgroups``: the init
    has exited and its cgroups are empty, so each ``rmdir`` succeeds at once
    (the kernel refuses one that holds a task or a child cgroup).  False when
    a leaf is still busy, or when the record is one this does not handle
    (systemd, a joined cgroup, a path outside /sys/fs/cgroup): the caller
    then goes through ``ocirt.cgroups``, which kills what is left, thaws,
    waits out EBUSY and removes the rest.  tests/test_fastcli.py checks it.
    """
    cg = record.get("cgroup")
    if not isinstance(cg, dict) or cg.get("driver") not in ("fs", "fs2"):
        return False
    if cg["driver"] == "fs2" and not isinstance(cg.get("path"), str):
        return False
    leaves = cgroup_leaves(cg)
    created = set(cg.get("created") or ())
    if not leaves <= created or not all(_under_cgroup_root(p) for p in created):
        return False  # a cgroup we joined is not ours to remove
    for leaf in sorted(leaves):
        try:
            posix.rmdir(leaf)
        except FileNotFoundError:
            continue
        except OSError:
            return False
    for parent in sorted(created - leaves, key=len, reverse=True):
        try:
            posix.rmdir(parent)
        except OSError:
            pass  # shared with another container, or gone
    return True


def cgroup_leaves(cg: "dict[str, Any]") -> set:
    """The container's own cgroup directories in a fs (per hierarchy) or fs2 record."""
    return set(cgroup_dirs(cg).values())


def cgroup_dirs(cg: "dict[str, Any]") -> "dict[str, str]":
    """{controller: directory} of a fs or fs2 record; "" is the cgroup2 one (fs2's
    cgroup, or a hybrid host's), as the drivers' ``paths()`` say."""
    dirs = dict(cg.get("paths") or {})
    if "path" in cg:
        dirs[""] = cg["path"]
    return dirs


def _under_cgroup_root(path: object) -> bool:
    return isinstance(path, str) and path.startswith(CGROUP_ROOT + "/") and "/../" not in path


# -- the record in its state directory (ocirt.state.StateDir reads it with these) --
def container_state(root: str, container_id: str) -> "dict[str, Any]":
    """runc state's object for the container ID under ROOT, read without its
    lock (``ContainerNotExist`` if there is none): what
    ``Container.load(root, id, lock=False).state()`` returns.  `state` calls
    this rather than load a Container or a StateDir: ``ocirt.container`` and
    ``ocirt.state`` are ~60 kB of code, whose load and module bodies were
    ~0.45 ms of each `state`'s CPU."""
    check_id(container_id)
    path = join(root, container_id)
    try:
        fd = posix.open(path, _DIR_FLAGS)
    except FileNotFoundError:
        raise _not_exist(container_id) from None
    try:  # as StateDir.open(lock=False): state.json looked up in the directory opened
        record = read_record(path, container_id) if _exists(STATE_FILE, fd) else None
    finally:
        posix.close(fd)
    if record is None:
        raise _not_exist(container_id)
    return public_state(record, derive_status(record, paused=is_frozen(record)))


def read_record(path: str, container_id: str) -> "dict[str, Any] | None":
    """The record in the state directory PATH: state.json's marshal copy if it
    was made from the state.json there now, else state.json; None if there is
    none, or it is not ocirt's record of CONTAINER_ID."""
    record = _read_copy(path)
    if record is None:
        try:
            fd = posix.open(join(path, STATE_FILE), _READ_FLAGS)
        except FileNotFoundError:
            return None
        try:
            from ocirt import _fastjson

            record = _fastjson.loads(_read_all(fd))
        finally:
            posix.close(fd)
    # Another runtime's state (runc writes state.json too, and a manager may
    # point both at one --root) is not an ocirt container.  Taking it for one
    # would make `delete -f` remove its directory and leave its processes and
    # cgroups behind, out of that runtime's reach.
    return record if _is_ours(record, container_id) else None  # type: ignore[return-value]


def _read_copy(path: str) -> "dict[str, Any] | None":
    """state.json's marshal copy in PATH if it was made from the state.json there now.

    The short commands read this: ``marshal`` is built in, while parsing
    JSON loads ``_json``, a shared library (~0.3 ms).  Anything else -- no
    copy, one of an older state.json (something rewrote it), a damaged
    one -- and the caller reads state.json itself.
    """
    try:
        current = posix.stat(join(path, STATE_FILE))
        fd = posix.open(join(path, STATE_COPY), _READ_FLAGS)
    except OSError:
        return None
    try:
        data = _read_all(fd)
    finally:
        posix.close(fd)
    try:
        key, record = marshal.loads(data)
    except (ValueError, EOFError, TypeError):
        return None
    return record if key == _file_key(current) else None


def is_frozen(record: "dict[str, Any]") -> bool:
    """ocirt.cgroups.is_frozen, read without importing ocirt.cgroups when possible."""
    frozen = cgroup_frozen(record)
    if frozen is None:  # a driver whose files this module does not know
        from ocirt.cgroups import is_frozen as cgroups_is_frozen

        frozen = cgroups_is_frozen(record)
    return frozen


def _not_exist(container_id: str) -> Exception:
    """ContainerNotExist(ID), with ocirt.errors imported only for it: `state`
    imports nothing else of it, and its module body (nine exception classes,
    ~10 us each to make) was ~0.13 ms of each `state`'s CPU."""
    from ocirt.errors import ContainerNotExist

    return ContainerNotExist(container_id)


def _file_key(st: "posix.stat_result") -> "tuple[int, int, int]":
    """Which state.json this is: a rewrite is a new inode (rename), an edit changes the rest."""
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _is_ours(record: object, container_id: str) -> bool:
    """A record ocirt wrote: its id, and the init's pid and start time."""
    return (
        isinstance(record, dict)
        and record.get("id") == container_id
        and "pid" in record
        and "init_start_time" in record
    )


def join(directory: str, name: str) -> str:
    """os.path.join(DIRECTORY, NAME) for a NAME without slashes."""
    if not directory or directory.endswith("/"):
        return directory + name
    return directory + "/" + name


def _exists(path: str, dir_fd: int | None = None) -> bool:
    try:
        posix.stat(path, dir_fd=dir_fd)
    except (OSError, ValueError):
        return False
    return True


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := posix.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)
