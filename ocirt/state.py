"""The container's state directory: one per container under ``--root``.

Layout of ``<root>/<id>/``:

* ``state.json``  the record below, replaced atomically (write + rename);
* ``state.marshal``  the same record in ``marshal``'s format, keyed by the
  state.json it copies: what the commands read when it matches (it spares
  them loading ``_json``); state.json stays the record of truth;
* ``start.sock``  the socket a created container's init waits on (see
  docs/architecture.md); gone once started;
* ``create.json``  create's intent (StateDir.stage_intent), and
  ``state.json.tmp``/``state.marshal.tmp`` until create commits them: what
  ``delete --force`` reads when create was killed before that.

Concurrency: every command that changes a container holds ``flock(LOCK_EX)``
on the directory itself; ``create`` holds it from ``mkdir`` to the end, so a
second command on the same id waits instead of reading half a container.  A
command that waited checks state.json in the directory it locked (not by
name): a ``delete`` may have removed that one, and a new container of the
id be at the path.  ``create`` holds ``LOCK_SH`` on ``--root`` from ``mkdir``
until it has its directory's lock; what judges a directory without
state.json abandoned (``delete --force`` after a killed create) opens it
under ``LOCK_EX`` there, so it never takes a create's fresh directory for one.

The record's status and public state are ``ocirt.record``'s (re-exported
here): the short commands' fast path reads them without this module's
imports.
"""

import fcntl
import marshal
import posix

from ocirt import _fastjson
from ocirt.record import (  # re-exported: the library's names for them
    OCI_VERSION,
    STAGE2_MEMFD_NAME,
    START_SOCKET,
    STATE_COPY,
    STATE_FILE,
    _exists,
    _file_key,
    _is_ours,
    _not_exist,
    _read_all,
    _read_copy,
    check_id,
    container_state,
    derive_status,
    init_is_alive,
    init_is_waiting,
    is_frozen,
    join,
    process_start_time,
    process_state_letter,
    public_state,
    read_record,
)

# No `os` and no `from __future__` here (see ocirt.record): posix calls, and
# annotations that name typing's Any are quoted.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = [  # ocirt.record's names too, for the library
    "OCI_VERSION",
    "STAGE2_MEMFD_NAME",
    "START_SOCKET",
    "STATE_FILE",
    "StateDir",
    "check_id",
    "container_state",
    "derive_status",
    "init_is_alive",
    "init_is_waiting",
    "is_frozen",
    "join",
    "list_ids",
    "process_start_time",
    "process_state_letter",
    "public_state",
    "rfc3339_now",
]

# create's first record, written before it makes anything outside the state
# directory (StateDir.stage_intent): what `delete --force` undoes when create
# was killed before state.json was committed (StateDir.open_uncommitted).
CREATE_INTENT = "create.json"

_DIR_FLAGS = posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC
_S_IFMT, _S_IFREG = 0o170000, 0o100000


def rfc3339_now() -> str:
    import time  # create's only: its import reads /etc/localtime (~0.1 ms)

    ns = time.time_ns()
    secs, frac = divmod(ns, 1_000_000_000)
    # Go's RFC3339Nano, as runc prints it: trailing zeros of the fraction dropped.
    fraction = f"{frac:09d}".rstrip("0")
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    return f"{stamp}.{fraction}Z" if fraction else f"{stamp}Z"


class StateDir:
    """A container's directory, opened and optionally locked."""

    def __init__(self, root: str, container_id: str) -> None:
        check_id(container_id)
        self.root = root
        self.id = container_id
        self.path = join(root, container_id)
        self._fd: int | None = None

    # -- lifecycle of the directory ------------------------------------
    def create(self) -> None:
        """mkdir + lock; refuses an id in use (mkdir is the atomic test)."""
        from ocirt.linux import pathnames  # not os: only create makes directories

        pathnames.makedirs(self.root, mode=0o700)
        root_fd = posix.open(self.root, _DIR_FLAGS)
        try:
            # Shared: creates of other ids go on side by side.  _open_settled
            # takes it exclusively, so that it never meets this directory
            # between mkdir and flock: empty and unlocked, it would look like
            # the leftover of a create killed right after mkdir.
            fcntl.flock(root_fd, fcntl.LOCK_SH)
            try:
                posix.mkdir(self.path, 0o700)
            except FileExistsError:
                from ocirt.errors import OcirtError

                raise OcirtError("container with given ID already exists") from None
            self._fd = posix.open(self.path, _DIR_FLAGS)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        finally:
            posix.close(root_fd)  # and with it the shared lock

    def _open_settled(self) -> int:
        """The directory's fd, opened while no create is between its mkdir and flock.

        What opens a directory that may lack state.json to judge it abandoned
        (open_uncommitted) must use this: the create that made it may not hold
        its lock yet (see create).  FileNotFoundError if root or directory is gone.
        """
        root_fd = posix.open(self.root, _DIR_FLAGS)
        try:
            fcntl.flock(root_fd, fcntl.LOCK_EX)
            return posix.open(self.path, _DIR_FLAGS)
        finally:
            posix.close(root_fd)

    def open(self, lock: bool = True) -> None:
        try:
            self._fd = posix.open(self.path, _DIR_FLAGS)
        except FileNotFoundError:
            raise _not_exist(self.id) from None
        if lock:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        # Looked up in the directory we hold, not by its name: a `delete` that
        # held the lock while we waited has removed this directory, and a new
        # container of the same id may already be at PATH, locked by its create.
        if not _exists(STATE_FILE, self._fd):
            self.close()
            raise _not_exist(self.id)

    def lock(self) -> bool:
        """Take the lock (if open() did not); False if the directory is no longer
        live: a `delete` removed it while we were not holding the lock."""
        if self._fd is None:
            try:
                self._fd = posix.open(self.path, _DIR_FLAGS)
            except FileNotFoundError:
                return False
        fcntl.flock(self._fd, fcntl.LOCK_EX)  # held already: a no-op
        return _exists(STATE_FILE, self._fd)

    def close(self) -> None:
        if self._fd is not None:
            posix.close(self._fd)
            self._fd = None

    def remove(self) -> None:
        """Remove the directory and everything in it (state files only)."""
        for name in posix.listdir(self.path):
            posix.unlink(join(self.path, name))
        posix.rmdir(self.path)
        self.close()

    # -- the record ------------------------------------------------------
    def file(self, name: str) -> str:
        return join(self.path, name)

    def socket_path(self, name: str) -> str:
        """A path for bind()/connect() of a socket in the directory.

        sun_path holds 108 bytes; dockerd's state dirs alone take ~100
        (/var/run/docker/runtime-runc/moby/<64 hex id>), so go through the
        directory's open fd instead of its name.
        """
        if self._fd is None:  # opened unlocked; close() releases it
            try:
                self._fd = posix.open(self.path, _DIR_FLAGS)
            except FileNotFoundError:
                raise _not_exist(self.id) from None
        return f"/proc/self/fd/{self._fd}/{name}"

    def write(self, record: "dict[str, Any]") -> None:
        """state.json, then its marshal copy (see read)."""
        self.stage(record)
        self.commit()

    def stage(self, record: "dict[str, Any]") -> None:
        """Write RECORD's files under temporary names, for commit() to put in place."""
        text = _fastjson.dumps(record, compact=True).encode()  # ASCII: \u escapes
        written = self._write_tmp(STATE_FILE, text)
        # The copy holds what a reader of state.json gets (lists, not tuples),
        # keyed by the state.json it was made from (a rename keeps the key).
        self._write_tmp(STATE_COPY, marshal.dumps((_file_key(written), _fastjson.loads(text))))

    def commit(self) -> None:
        """Rename the staged files into place: state.json first (readers may pass)."""
        for name in (STATE_FILE, STATE_COPY):
            posix.rename(self.file(name + ".tmp"), self.file(name))

    def stage_intent(self, record: "dict[str, Any]") -> None:
        """create's first record (CREATE_INTENT), before it makes cgroups or the init.

        RECORD names the bundle and the cgroups create is about to make; should
        create be killed before commit(), `delete --force` finds them here (or
        in the staged state.json.tmp, once that holds the init's pid).
        """
        self._write(CREATE_INTENT, _fastjson.dumps(record, compact=True).encode())

    def open_uncommitted(self) -> "dict[str, Any] | None":
        """Lock the directory of a create that died before commit(); its last record.

        A create holds the lock from mkdir to the end, so once we have it, a
        directory without state.json is one whose create was killed midway (or
        a delete that was).  Returns the staged state.json.tmp if it is whole
        (it has the init's pid), else create's intent, else {} (killed before
        it wrote either); None when there is no such directory: none at all, a
        committed one, or one removed while we waited for the lock.  The
        staged record comes over the intent (whose pid_file_temp stays).
        """
        try:
            self._fd = self._open_settled()
        except FileNotFoundError:
            return None
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        # st_nlink 0: removed by the create we waited for (a failed one).
        if posix.fstat(self._fd).st_nlink == 0 or _exists(self.file(STATE_FILE)):
            self.close()
            return None
        intent = self._read_record(CREATE_INTENT)
        intent = intent if _is_ours(intent, self.id) else {}
        staged = self._read_record(STATE_FILE + ".tmp")
        if _is_ours(staged, self.id):
            return {**intent, **staged}  # type: ignore[dict-item]
        return intent  # type: ignore[return-value]

    def _read_record(self, name: str) -> object:
        """The JSON in NAME, or None if it is missing or cut short (killed mid-write)."""
        try:
            fd = posix.open(self.file(name), posix.O_RDONLY | posix.O_CLOEXEC)
        except OSError:
            return None
        try:
            return _fastjson.loads(_read_all(fd))
        except ValueError:
            return None
        finally:
            posix.close(fd)

    def _write_tmp(self, name: str, data: bytes) -> "posix.stat_result":
        """NAME.tmp with DATA; the written file's stat."""
        return self._write(name + ".tmp", data)

    def _write(self, name: str, data: bytes) -> "posix.stat_result":
        """NAME with DATA; the written file's stat."""
        fd = posix.open(
            self.file(name),
            posix.O_WRONLY | posix.O_CREAT | posix.O_TRUNC | posix.O_CLOEXEC,
            0o600,
        )
        try:
            view = memoryview(data)
            while view:
                view = view[posix.write(fd, view) :]
            return posix.fstat(fd)
        finally:
            posix.close(fd)

    def read(self) -> "dict[str, Any]":
        record = read_record(self.path, self.id)
        if record is None:  # none, or another runtime's (see read_record)
            raise _not_exist(self.id)
        return record

    def _read_copy(self) -> "dict[str, Any] | None":
        """state.json's marshal copy, if it was made from the state.json there now."""
        return _read_copy(self.path)


def list_ids(root: str) -> list[str]:
    try:
        names = posix.listdir(root)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if _is_file(join(join(root, n), STATE_FILE)))


def _is_file(path: str) -> bool:
    """os.path.isfile."""
    try:
        return posix.stat(path).st_mode & _S_IFMT == _S_IFREG
    except (OSError, ValueError):
        return False
