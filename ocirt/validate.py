"""Validation of a bundle's config.json before ``ocirt create`` / ``ocirt run``.

Two layers:

* a JSON Schema check against ``schemas/`` (OCI runtime-spec v1.3.0, written for
  ocirt).  jsonschema costs ~100 ms to import, so it is imported inside
  :func:`validate_config` / :func:`validate_process` only, and only when the
  schema compiled to Python (``ocirt/_schema_fast.py``) refuses a config or is
  missing; jsonschema's verdict can be cached per config content
  (``cache_dir``).  ``import ocirt.validate`` must
  stay cheap because ``ocirt state/start/kill/delete`` never validate.
* semantic checks the schema cannot express (the rootfs exists, the program is
  in the rootfs, namespace files are namespaces, ...).  They are cheap and
  always run.

Every failure is a :class:`ocirt.errors.ConfigError` naming the file, the
dotted JSON path (``mounts[2].destination``) and the problem, plus a fix where
there is an obvious one.  Wording follows runc where container managers match
on it (``executable file not found in $PATH`` -> podman exit 127).
"""

from __future__ import annotations

import errno
import fcntl
import posix
import stat
from _collections import deque

from ocirt import _fastjson, debug
from ocirt.errors import ConfigError
from ocirt.linux import pathnames  # not os.path: os costs ~1.2 ms of imports

# json, re, logging, pathlib and typing are imported where used: together they
# cost ~25 ms, and this module runs on every `create`.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from pathlib import Path
    from typing import Any


def _log():
    import logging

    return logging.getLogger(__name__)


def _quote(value: object) -> str:
    """The value as JSON (json.dumps's output), for messages."""
    return _fastjson.dumps(value)


def _shorten(text: str, limit: int = 0) -> str:
    """TEXT cut in the middle to LIMIT (MAX_MESSAGE) characters, control
    characters escaped: a message stays one readable line."""
    limit = limit or MAX_MESSAGE
    if len(text) > limit:
        text = f"{text[: limit * 2 // 3]}... ({len(text)} characters) ...{text[-limit // 4 :]}"
    if not text.isprintable():
        text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text


def readable(error: ConfigError) -> ConfigError:
    """ERROR with its problem and fix short and on one line (a config may hold
    megabyte strings and newlines, which messages quote)."""
    problem, fix = _shorten(error.problem), _shorten(error.fix)
    if (problem, fix) == (error.problem, error.fix):
        return error
    return ConfigError(error.filename, error.json_path, problem, fix)


# Bump the suffix when the schemas change in a way that could turn a cached
# "valid" verdict into "invalid": it is part of the cache key.  (.2: the
# structure check and integers without a fraction, under the same verdict.)
SCHEMA_VERSION = "1.3.0+ocirt.2"
SCHEMA_BASE_URI = "https://ocirt.dev/schemas/"

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Linux follows at most 40 symlinks in one lookup (MAXSYMLINKS); so do we.
MAX_SYMLINKS = 40

# How deep a config may nest ({} and []).  The deepest runtime-spec field
# is 6 levels down (linux.seccomp.syscalls[].args[].op); unknown fields
# nested thousands of levels deep would exhaust the recursion of the JSON
# encoder (state.json) and the schema checker: refused, by JSON path.
MAX_DEPTH = 64

# The longest problem or fix text a ConfigError carries: a 1 MiB string in
# the config is named by its start, not repeated whole.
MAX_MESSAGE = 300

# ociVersion values we run: any 1.x from 1.0.0 to 1.3.x, with optional
# pre-release / build suffixes (runc writes "1.0.2-dev").
SUPPORTED_MAJOR = 1
MAX_SUPPORTED_MINOR = 3


def _semver(version: str) -> tuple[int, int, int] | None:
    """(major, minor, patch) of a SemVer 2.0 string, else None (no `re`: see above)."""
    core, plus, build = version.partition("+")
    core, dash, pre = core.partition("-")
    for suffix, present in ((pre, dash), (build, plus)):
        if present and not all(
            part and all(c.isascii() and (c.isalnum() or c == "-") for c in part)
            for part in suffix.split(".")
        ):
            return None
    numbers = core.split(".")
    if len(numbers) != 3 or not all(
        n.isascii() and n.isdigit() and (n == "0" or not n.startswith("0")) for n in numbers
    ):
        return None
    return int(numbers[0]), int(numbers[1]), int(numbers[2])


# capabilities(7) as of Linux 5.9 (CAP_CHECKPOINT_RESTORE = 40): 41 names.
KNOWN_CAPABILITIES: frozenset[str] = frozenset(
    {
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_DAC_READ_SEARCH",
        "CAP_FOWNER",
        "CAP_FSETID",
        "CAP_KILL",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETPCAP",
        "CAP_LINUX_IMMUTABLE",
        "CAP_NET_BIND_SERVICE",
        "CAP_NET_BROADCAST",
        "CAP_NET_ADMIN",
        "CAP_NET_RAW",
        "CAP_IPC_LOCK",
        "CAP_IPC_OWNER",
        "CAP_SYS_MODULE",
        "CAP_SYS_RAWIO",
        "CAP_SYS_CHROOT",
        "CAP_SYS_PTRACE",
        "CAP_SYS_PACCT",
        "CAP_SYS_ADMIN",
        "CAP_SYS_BOOT",
        "CAP_SYS_NICE",
        "CAP_SYS_RESOURCE",
        "CAP_SYS_TIME",
        "CAP_SYS_TTY_CONFIG",
        "CAP_MKNOD",
        "CAP_LEASE",
        "CAP_AUDIT_WRITE",
        "CAP_AUDIT_CONTROL",
        "CAP_SETFCAP",
        "CAP_MAC_OVERRIDE",
        "CAP_MAC_ADMIN",
        "CAP_SYSLOG",
        "CAP_WAKE_ALARM",
        "CAP_BLOCK_SUSPEND",
        "CAP_AUDIT_READ",
        "CAP_PERFMON",
        "CAP_BPF",
        "CAP_CHECKPOINT_RESTORE",
    }
)
CAPABILITY_SETS = ("bounding", "effective", "inheritable", "permitted", "ambient")

# getrlimit(2) resources.
KNOWN_RLIMITS: frozenset[str] = frozenset(
    {
        "RLIMIT_AS",
        "RLIMIT_CORE",
        "RLIMIT_CPU",
        "RLIMIT_DATA",
        "RLIMIT_FSIZE",
        "RLIMIT_LOCKS",
        "RLIMIT_MEMLOCK",
        "RLIMIT_MSGQUEUE",
        "RLIMIT_NICE",
        "RLIMIT_NOFILE",
        "RLIMIT_NPROC",
        "RLIMIT_RSS",
        "RLIMIT_RTPRIO",
        "RLIMIT_RTTIME",
        "RLIMIT_SIGPENDING",
        "RLIMIT_STACK",
    }
)

# Namespace type -> (name under /proc/self/ns, CLONE_NEW* flag that the
# NS_GET_NSTYPE ioctl returns).
NAMESPACES: dict[str, tuple[str, int]] = {
    "mount": ("mnt", 0x00020000),
    "cgroup": ("cgroup", 0x02000000),
    "uts": ("uts", 0x04000000),
    "ipc": ("ipc", 0x08000000),
    "user": ("user", 0x10000000),
    "pid": ("pid", 0x20000000),
    "network": ("net", 0x40000000),
    "time": ("time", 0x00000080),
}
_NS_GET_NSTYPE = 0xB703  # _IO(0xb7, 0x3), linux/nsfs.h

# Hooks run before the container program starts and may add files to the
# rootfs (e.g. the NVIDIA hook injects nvidia-smi).  Docker's own prestart hook
# only configures networking, so it does not count.
_ROOTFS_CHANGING_HOOKS = ("prestart", "createRuntime", "createContainer", "startContainer")
_HARMLESS_HOOK_NAMES = frozenset({"libnetwork-setkey"})


def _is_identifier(text: str) -> bool:
    return text.isascii() and text.isidentifier()


# --------------------------------------------------------------------------
# Loading


def load_config(bundle: str, filename: str = "config.json") -> tuple[dict[str, Any], bytes]:
    """Read and parse ``<bundle>/<filename>``; return the object and its raw bytes.

    The raw bytes are kept because the schema-check cache is keyed on them.
    """
    path = pathnames.join(bundle, filename)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        # runc: "JSON specification file config.json not found"
        raise ConfigError(
            filename,
            "",
            f"JSON specification file {pathnames.abspath(path)} not found",
            "run `ocirt spec` in the bundle directory to create one, or pass --bundle",
        ) from None
    except OSError as e:
        raise ConfigError(
            filename, "", f"cannot read {pathnames.abspath(path)}: {e.strerror}"
        ) from None
    return parse_json_object(raw, filename), raw


def parse_json_object(raw: bytes, filename: str) -> dict[str, Any]:
    """Parse ``raw`` as a JSON object, reporting syntax errors as line:column."""
    try:
        try:
            data = _fastjson.loads(raw)
        except ValueError:
            data = _parse_for_error(raw, filename)
    except RecursionError:  # either C scanner's guard: ~1000 levels of [ or {
        raise ConfigError(
            filename,
            "",
            "invalid JSON: nested too deeply to parse",
            f"no runtime-spec field is nested more than {MAX_DEPTH} levels deep",
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(
            filename, "", f"the top level must be a JSON object, not {_json_type(data)}"
        )
    return data


def _parse_for_error(raw: bytes, filename: str) -> Any:
    """The fast parser failed: let `json` find the line:column to report."""
    import json

    try:
        return json.loads(raw)
    except json.JSONDecodeError as e:
        raise ConfigError(
            filename,
            "",
            f"invalid JSON at line {e.lineno}:{e.colno}: {e.msg}",
            "fix the JSON syntax",
        ) from None
    except UnicodeDecodeError as e:
        raise ConfigError(
            filename, "", f"invalid JSON: not UTF-8 text ({e.reason} at byte {e.start})"
        ) from None
    except ValueError as e:  # int(): a number of thousands of digits
        raise ConfigError(
            filename,
            "",
            "invalid JSON: a number is too long to read"
            if "digits" in str(e)
            else f"invalid JSON: {_shorten(str(e))}",
            "no runtime-spec number has more than 20 digits",
        ) from None


# --------------------------------------------------------------------------
# Public validation entry points


def validate_config(
    config: dict[str, Any],
    raw: bytes,
    *,
    bundle: str,
    filename: str = "config.json",
    cache_dir: str | None = None,
) -> None:
    """Check a config for ``create``/``run``: schema (maybe cached), then semantics.

    CACHE_DIR keeps jsonschema's verdicts only: the compiled check (~1 ms)
    is cheaper than the cache itself (a digest, a stat, and a new file per
    config, as a manager's configs all differ: ~0.7 ms of create's CPU).
    """
    try:
        # The structure first: the schema checker recurses into what it checks.
        _check_structure(config, filename)
        if not _fast_schema_accepts(config):  # then jsonschema judges, and words it
            marker = _cache_marker(cache_dir, raw) if cache_dir else None
            if marker is None or not pathnames.exists(marker):
                _schema_check(config, "config-schema.json", filename, prefix="")
                if marker is not None:
                    _write_marker(marker)
        _semantic_checks(config, bundle=bundle, filename=filename)
    except ConfigError as e:
        raise readable(e) from None


def validate_process(process: dict[str, Any], filename: str) -> None:
    """Check a process description on its own (``ocirt exec --process FILE``).

    JSON paths are relative to the file (``user.uid``), which holds only the
    process object.  The program lookup needs the container's rootfs, so the
    caller does that once it knows the container.
    """
    if not isinstance(process, dict):
        raise ConfigError(
            filename, "", f"the top level must be a JSON object, not {_json_type(process)}"
        )
    if not _fast_schema_accepts(process, "_schema_fast_process"):
        _schema_check(process, "config-schema.json#/$defs/Process", filename, prefix="")
    _check_process_fields(process, filename, prefix="")


def validate_resources(resources: dict[str, Any], filename: str) -> None:
    """Schema-check a ``linux.resources`` object (``ocirt update --resources``)."""
    if not isinstance(resources, dict):
        raise ConfigError(
            filename, "", f"the top level must be a JSON object, not {_json_type(resources)}"
        )
    _schema_check(resources, "config-linux.json#/$defs/Resources", filename, prefix="")


def validate_against(instance: Any, ref: str, filename: str) -> None:
    """Schema-check any document against one of our schemas.

    ``ref`` is a file name under ``schemas/`` with an optional JSON pointer
    fragment: ``state-schema.json``, ``features-schema.json``,
    ``config-schema.json#/$defs/Process``.
    """
    _schema_check(instance, ref, filename, prefix="")


def resolve_in_root(root: str, path: str) -> str:
    """Resolve ``path`` as the container would see it, with ``root`` as ``/``.

    Symlinks are followed inside ``root``: an absolute target restarts at
    ``root`` and ``..`` never climbs above it, so a hostile rootfs cannot make
    us look at host files.  Components that do not exist are kept as they are,
    so the caller's ``stat`` reports the missing file.  Raises ``OSError(ELOOP)``
    after :data:`MAX_SYMLINKS` links.
    """
    root = pathnames.abspath(root)
    pending: deque[str] = deque(c for c in path.split("/") if c)
    done: list[str] = []
    links = 0
    while pending:
        name = pending.popleft()
        if name == ".":
            continue
        if name == "..":
            if done:
                done.pop()
            continue
        try:
            target = posix.readlink(pathnames.join(root, *done, name))
        except OSError:
            # Not a symlink (EINVAL) or missing (ENOENT): take it literally.
            done.append(name)
            continue
        links += 1
        if links > MAX_SYMLINKS:
            raise OSError(errno.ELOOP, posix.strerror(errno.ELOOP), path)
        if target.startswith("/"):
            done = []
        pending.extendleft(reversed([c for c in target.split("/") if c]))
    return pathnames.join(root, *done)


# --------------------------------------------------------------------------
# Schema layer


_validators: dict[str, Any] = {}


def schema_dir() -> Path:
    """Where the JSON Schemas live: the package's data (``ocirt/schemas``, put there
    by the package build), else the checkout's ``schemas/`` (an editable install)."""
    from importlib.resources import files
    from pathlib import Path

    packaged = Path(str(files("ocirt").joinpath("schemas")))
    checkout = Path(__file__).resolve().parent.parent / "schemas"
    for candidate in (packaged, checkout):
        if (candidate / "config-schema.json").is_file():
            return candidate
    raise ConfigError(
        "schemas",
        "",
        f"ocirt's JSON schemas are missing (looked in {packaged} and {checkout})",
    )


def _fast_schema_accepts(instance: Any, module: str = "_schema_fast") -> bool:
    """The verdict of ocirt/_schema_fast.py (ocirt/_schema_fast_process.py for a
    process.json), the schema compiled to plain Python at build time
    (ocirt/_shim/build_schema.py): ~1 ms where building jsonschema's validator in
    a fresh process costs ~100.  False when it refuses INSTANCE, and when it is
    missing or was made from other schemas (a checkout whose schemas/ changed
    since): jsonschema decides then, and words the error."""
    try:
        generated = __import__(f"ocirt.{module}", fromlist=["validate"])
    except ImportError:
        return False
    checkout = __file__.rpartition("/")[0].rpartition("/")[0] + "/schemas"  # posix: see os above
    if _is_dir(checkout) and _schemas_stamp(checkout) != generated.SCHEMA_STAMP:
        return False
    try:
        generated.validate(instance)
    except generated.JsonSchemaValueException:
        return False
    return True


def _schemas_stamp(directory: str) -> str:
    """build_schema.schema_stamp's: name, size and mtime of each schema file."""
    parts = []
    for name in sorted(n for n in posix.listdir(directory) if n.endswith(".json")):
        st = posix.stat(f"{directory}/{name}")
        parts.append(f"{name}:{st.st_size}:{st.st_mtime_ns}")
    return ";".join(parts)


def _is_dir(path: str) -> bool:
    try:
        return stat.S_ISDIR(posix.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def _get_validator(ref: str) -> Any:
    """Build (once per process) a draft 2020-12 validator for ``ref`` in our schemas."""
    if ref in _validators:
        return _validators[ref]
    # Imported here, not at module level: see the module docstring.
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    resources = []
    for path in sorted(schema_dir().glob("*.json")):
        contents = _fastjson.loads(path.read_text())
        # Without "$schema" (all are draft 2020-12): jsonschema would switch to
        # its stock validator class at each file's root, dropping _strict_integers.
        contents.pop("$schema", None)
        resource = Resource.from_contents(contents, default_specification=DRAFT202012)
        resources.append((contents.get("$id", SCHEMA_BASE_URI + path.name), resource))
    registry = Registry().with_resources(resources)
    validator = _strict_integers(Draft202012Validator)(
        {"$ref": SCHEMA_BASE_URI + ref}, registry=registry
    )
    _validators[ref] = validator
    return validator


def _strict_integers(validator_class: Any) -> Any:
    """VALIDATOR_CLASS where "integer" means a JSON number written without a
    fraction: JSON Schema counts 1.0 as an integer, but the kernel interfaces
    these fields feed take ints (and runc's Go decoder refuses 1.0 too)."""
    from jsonschema import validators

    def is_integer(_checker: Any, instance: Any) -> bool:
        return isinstance(instance, int) and not isinstance(instance, bool)

    checker = validator_class.TYPE_CHECKER.redefine("integer", is_integer)
    return validators.extend(validator_class, type_checker=checker)


def _schema_check(instance: Any, ref: str, filename: str, *, prefix: str) -> None:
    from jsonschema.exceptions import best_match

    error = best_match(_get_validator(ref).iter_errors(instance))
    if error is None:
        return
    path = format_json_path(error.absolute_path, prefix)
    problem, fix = _describe_schema_error(error)
    raise ConfigError(filename, path, problem, fix)


def format_json_path(parts: Iterable[str | int], prefix: str = "") -> str:
    """``["mounts", 2, "destination"]`` -> ``mounts[2].destination``."""
    out = prefix
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _is_identifier(part) and len(part) <= 60:
            out += f".{part}" if out else part
        else:
            # Keys such as sysctl names or annotations contain dots.
            out += f"[{_quote(_shorten(part, 60))}]"
    return out


def _describe_schema_error(error: Any) -> tuple[str, str]:
    """Turn a jsonschema error into (problem, fix); the message is already short
    unless it quotes a long value, which is then abbreviated."""
    kind = error.validator
    instance = error.instance
    if len(error.message) > MAX_MESSAGE:
        error.message = _abbreviate_instance(error.message, instance)
    if kind == "pattern" and error.validator_value == "^/":
        return f"{_quote(instance)} is not an absolute path", "start it with /"
    if kind == "pattern" and "ociVersion" in list(error.absolute_path)[-1:]:
        return f"{_quote(instance)} is not a SemVer version", 'use e.g. "1.0.2" or "1.3.0"'
    quoted_number = isinstance(instance, str) and instance.lstrip("-").isdigit()
    if kind == "type" and error.validator_value == "integer" and quoted_number:
        return error.message, "write the number without quotes"
    if kind == "required":
        import re

        missing = re.match(r"^'([^']+)'", error.message)
        if missing:
            return error.message, f'add "{missing.group(1)}"'
    if kind == "enum":
        return error.message, ""
    return error.message, ""


def _abbreviate_instance(message: str, instance: Any) -> str:
    """MESSAGE with the repr of INSTANCE in it abbreviated (reprlib's rules)."""
    import reprlib

    short = reprlib.Repr()  # (keyword arguments only from Python 3.12)
    short.maxstring, short.maxother, short.maxlevel, short.maxlist, short.maxdict = 60, 60, 3, 4, 4
    try:
        whole = repr(instance)
    except RecursionError:
        return _shorten(message)
    return _shorten(message.replace(whole, short.repr(instance), 1))


def _cache_marker(cache_dir: str, raw: bytes) -> str:
    try:  # the builtin module: hashlib loads OpenSSL (~2 ms)
        from _sha256 import sha256
    except ImportError:
        from hashlib import sha256
    digest = sha256(raw + b"\0" + SCHEMA_VERSION.encode()).hexdigest()
    return pathnames.join(cache_dir, digest)


def _write_marker(marker: str) -> None:
    """Record a passed schema check; the cache is an optimisation, so never fail."""
    import os  # a verdict of jsonschema's only (see ocirt.validate's cache)

    try:
        os.makedirs(pathnames.dirname(marker), mode=0o700, exist_ok=True)
        with open(marker, "wb"):
            pass
    except OSError as e:
        _log().debug("cannot write schema cache marker %s: %s", marker, e)


# --------------------------------------------------------------------------
# Semantic layer


def _semantic_checks(config: dict[str, Any], *, bundle: str, filename: str) -> None:
    _check_oci_version(config, filename)
    rootfs = _check_root(config, bundle, filename)
    process = config.get("process")
    if process is None:
        # runc refuses create/run without a process; so do we.
        raise ConfigError(
            filename,
            "process",
            "process property must not be empty",
            'add a "process" object (`ocirt spec` shows one)',
        )
    _check_process_fields(process, filename, prefix="process")
    _check_lengths(config, filename)
    linux = config.get("linux") or {}
    _check_namespaces(linux, filename)
    _check_cgroups_path(linux, filename)
    _check_shared_mount_namespace(linux, filename)
    _check_device_access(linux, filename)
    _check_sysctl(linux, filename)
    _check_hostname(config, linux, filename)
    _check_mounts(config.get("mounts") or [], bundle, filename)
    _check_executable(config, rootfs, bundle, filename)


_INF = float("inf")


def _check_structure(config: dict[str, Any], filename: str) -> None:
    """No NUL in any string or key (the kernel and libc end strings there: a
    path would silently lose its tail), no NaN or infinite number, nothing
    nested deeper than MAX_DEPTH."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(config, ())]
    while stack:
        value, path = stack.pop()
        if isinstance(value, str):
            if "\0" in value:
                _refuse_nul(filename, path, value)
            continue
        if isinstance(value, float) and (value != value or value in (_INF, -_INF)):
            # Not JSON (RFC 8259), and state.json must stay JSON.
            raise ConfigError(
                filename,
                format_json_path(path),
                f"{value} is not a JSON number (NaN, Infinity or too large for a double)",
                "write a finite number",
            )
        if isinstance(value, dict):
            items: Iterable[tuple[str | int, Any]] = value.items()
        elif isinstance(value, list):
            items = enumerate(value)
        else:
            continue
        if len(path) >= MAX_DEPTH:
            raise ConfigError(
                filename,
                format_json_path(path),
                f"nested more than {MAX_DEPTH} levels deep",
                "no runtime-spec field is nested that deep: flatten it or remove it",
            )
        for key, child in items:
            if isinstance(key, str) and "\0" in key:
                _refuse_nul(filename, path, key)
            stack.append((child, (*path, key)))


def _refuse_nul(filename: str, path: tuple[str | int, ...], text: str) -> None:
    raise ConfigError(
        filename,
        format_json_path(path),
        f"{_quote(text)} contains a NUL character",
        "remove it: system calls end a string at the first NUL",
    )


def check_host_support(config: dict[str, Any], filename: str = "config.json") -> None:
    """What this host and ocirt can do for the config (``create`` calls it after
    :func:`validate_config`): LSMs, time namespaces, RDT, CPUs and NUMA nodes,
    network interfaces, idmapped and rootless requirements.  Kept apart so that
    a config can be judged valid without judging the host it was written on.
    """
    from ocirt.linux import hostcheck

    try:
        hostcheck.check(config, filename)
    except ConfigError as e:
        raise readable(e) from None


def _check_cgroups_path(linux: dict[str, Any], filename: str) -> None:
    """An absolute cgroupsPath that names a hierarchy's root ("/", "//",
    "/a/.."): the container would join the host's root cgroup, write its
    limits there, and delete (without a pid namespace) would kill every
    process in it.  (A relative one that cleans to nothing means the id.)"""
    path = linux.get("cgroupsPath") or ""
    if (
        path.startswith("/")
        and ":" not in path
        and pathnames.normpath("/" + path.lstrip("/")) == "/"
    ):
        raise ConfigError(
            filename,
            "linux.cgroupsPath",
            f"{_quote(path)} is the root cgroup, which holds the host's processes",
            'name a cgroup of the container\'s own, e.g. "/ocirt/<id>", or leave it out',
        )


def _check_sysctl(linux: dict[str, Any], filename: str) -> None:
    """Only sysctls of a namespace the container has of its own (runc's rule)."""
    if not linux.get("sysctl"):
        return
    from ocirt.linux.sysctl import namespace_of

    kinds = {ns.get("type") for ns in linux.get("namespaces") or []}
    for key in linux.get("sysctl") or {}:
        where = format_json_path(["linux", "sysctl", key])
        owner = namespace_of(key)
        if owner is None:
            raise ConfigError(
                filename,
                where,
                f"sysctl {key!r} is not in a separate kernel namespace",
                "only ipc (kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*), "
                "network (net.*) and uts sysctls can be set for a container",
            )
        if owner not in kinds:
            raise ConfigError(
                filename,
                where,
                f"sysctl {key!r} not allowed in host {owner} namespace",
                f"add a {owner} namespace to linux.namespaces",
            )


def _check_device_access(linux: dict[str, Any], filename: str) -> None:
    """Device rules' access: r, w and m (the spec).  runc takes other letters
    ("rwa") and ignores them; so do we, saying so."""
    rules = (linux.get("resources") or {}).get("devices") or []
    for i, rule in enumerate(rules):
        access = rule.get("access") if isinstance(rule, dict) else None
        if not isinstance(access, str):
            continue
        unknown = sorted({c for c in access if c not in "rwm"})
        if unknown:
            debug.warn(
                f"{filename}: linux.resources.devices[{i}].access: {access!r}:"
                f" {''.join(unknown)!r} is not a device permission (r, w, m): ignored"
            )


def _check_shared_mount_namespace(linux: dict[str, Any], filename: str) -> None:
    """Without a mount namespace of its own the container shares the runtime's,
    the host's: its root mount's propagation is the host's to set, not the config's."""
    kinds = {ns.get("type") for ns in linux.get("namespaces") or []}
    if "mount" not in kinds and linux.get("rootfsPropagation"):
        raise ConfigError(
            filename,
            "linux.rootfsPropagation",
            "cannot set the rootfs propagation without a private mount namespace"
            " (it would change the host's mounts)",
            'add {"type": "mount"} to linux.namespaces or remove linux.rootfsPropagation',
        )


def _check_hostname(config: dict[str, Any], linux: dict[str, Any], filename: str) -> None:
    kinds = {ns.get("type") for ns in linux.get("namespaces") or []}
    for field_name in ("hostname", "domainname"):
        if config.get(field_name) and "uts" not in kinds:
            raise ConfigError(
                filename,
                field_name,
                f"unable to set {field_name} without a private UTS namespace",
                'add {"type": "uts"} to linux.namespaces or remove the field',
            )


def _check_oci_version(config: dict[str, Any], filename: str) -> None:
    version = config.get("ociVersion")
    newest = f"{SUPPORTED_MAJOR}.{MAX_SUPPORTED_MINOR}"
    fix = f'set ociVersion to a 1.x version up to {newest}.x, e.g. "{newest}.0"'
    if not isinstance(version, str):
        raise ConfigError(filename, "ociVersion", "missing: the spec version is required", fix)
    parsed = _semver(version)
    if parsed is None:
        raise ConfigError(filename, "ociVersion", f"{_quote(version)} is not a SemVer version", fix)
    major, minor, _patch = parsed
    if major != SUPPORTED_MAJOR or minor > MAX_SUPPORTED_MINOR:
        raise ConfigError(
            filename,
            "ociVersion",
            f"{_quote(version)} is not supported: ocirt implements runtime-spec 1.0.0 to "
            f"{SUPPORTED_MAJOR}.{MAX_SUPPORTED_MINOR}.x",
            fix,
        )


def _check_root(config: dict[str, Any], bundle: str, filename: str) -> str:
    """The rootfs must be an existing directory; return its absolute path."""
    root = config.get("root")
    if not isinstance(root, dict) or not root.get("path"):
        raise ConfigError(
            filename,
            "root.path",
            "missing: create and run need a root filesystem",
            'add "root": {"path": "rootfs"}',
        )
    rootfs = pathnames.abspath(pathnames.join(bundle, root["path"]))
    try:
        st = posix.stat(rootfs)
    except OSError as e:
        raise ConfigError(
            filename,
            "root.path",
            f"{rootfs}: {e.strerror}",
            "create the root filesystem there or fix root.path",
        ) from None
    if not stat.S_ISDIR(st.st_mode):
        raise ConfigError(
            filename, "root.path", f"{rootfs} is not a directory", "root.path must name a directory"
        )
    return rootfs


# Kernel limits on strings the container's setup hands to system calls.
PATH_MAX = 4096  # with its NUL
NAME_MAX = 255
HOST_NAME_MAX = 64  # sethostname(2), setdomainname(2)


def _paths_in(config: dict[str, Any]) -> Iterable[tuple[str, Any]]:
    """(JSON path, value) of the config's path strings."""
    yield "root.path", (config.get("root") or {}).get("path")
    yield "process.cwd", (config.get("process") or {}).get("cwd")
    for i, mount in enumerate(config.get("mounts") or []):
        yield f"mounts[{i}].destination", mount.get("destination")
        yield f"mounts[{i}].source", mount.get("source")
    linux = config.get("linux") or {}
    for field in ("maskedPaths", "readonlyPaths"):
        for i, path in enumerate(linux.get(field) or []):
            yield f"linux.{field}[{i}]", path
    for i, device in enumerate(linux.get("devices") or []):
        yield f"linux.devices[{i}].path", device.get("path")


def _check_lengths(config: dict[str, Any], filename: str) -> None:
    """What the kernel would refuse with ENAMETOOLONG or EINVAL half-way
    through the setup: refused here, by field."""
    for json_path, path in _paths_in(config):
        if not isinstance(path, str):
            continue
        size = len(path.encode(errors="surrogatepass"))
        if size >= PATH_MAX:
            raise ConfigError(
                filename,
                json_path,
                f"{_quote(path)} is {size} bytes long: a path must be shorter than {PATH_MAX}",
                "shorten it",
            )
        longest = max(path.split("/"), key=len)
        if len(longest.encode(errors="surrogatepass")) > NAME_MAX:
            raise ConfigError(
                filename,
                json_path,
                f"{_quote(longest)} is longer than {NAME_MAX} bytes: no file name can be",
                "shorten it",
            )
    for field in ("hostname", "domainname"):
        name = config.get(field)
        if isinstance(name, str) and len(name.encode(errors="surrogatepass")) > HOST_NAME_MAX:
            raise ConfigError(
                filename,
                field,
                f"{_quote(name)} is longer than {HOST_NAME_MAX} bytes, the kernel's limit",
                "shorten it",
            )


def _check_process_fields(process: dict[str, Any], filename: str, *, prefix: str) -> None:
    """Checks on the process object that need no rootfs (shared with exec -p)."""

    def at(field: str) -> str:
        return f"{prefix}.{field}" if prefix else field

    cwd = process.get("cwd")
    if not cwd:
        raise ConfigError(filename, at("cwd"), "cwd property must not be empty", 'set "cwd": "/"')
    if not cwd.startswith("/"):
        raise ConfigError(
            filename,
            at("cwd"),
            f"cwd must be an absolute path, not {_quote(cwd)}",
            "start it with /",
        )
    args = process.get("args")
    if not args:
        raise ConfigError(
            filename, at("args"), "args must not be empty", 'give the program to run, e.g. ["sh"]'
        )
    if not args[0]:
        raise ConfigError(filename, at("args[0]"), "the program name is empty")
    _check_capabilities(process.get("capabilities") or {}, filename, at("capabilities"))
    _check_rlimits(process.get("rlimits") or [], filename, at("rlimits"))


def _check_capabilities(caps: dict[str, Any], filename: str, path: str) -> None:
    for set_name in CAPABILITY_SETS:
        for i, name in enumerate(caps.get(set_name) or []):
            if name not in KNOWN_CAPABILITIES:
                hint = "capability names look like CAP_NET_ADMIN (see capabilities(7))"
                if isinstance(name, str) and f"CAP_{name.upper()}" in KNOWN_CAPABILITIES:
                    hint = f"did you mean CAP_{name.upper()}?"
                raise ConfigError(
                    filename,
                    f"{path}.{set_name}[{i}]",
                    f"unknown capability {_quote(name)}",
                    hint,
                )


def _check_rlimits(rlimits: Sequence[dict[str, Any]], filename: str, path: str) -> None:
    seen: dict[str, int] = {}
    for i, rl in enumerate(rlimits):
        kind = rl.get("type")
        if kind not in KNOWN_RLIMITS:
            raise ConfigError(
                filename,
                f"{path}[{i}].type",
                f"unknown rlimit type {_quote(kind)}",
                "see getrlimit(2), e.g. RLIMIT_NOFILE",
            )
        if kind in seen:
            # The spec: duplicated rlimit types MUST be an error.
            raise ConfigError(
                filename,
                f"{path}[{i}].type",
                f"{kind} is already set by {path}[{seen[kind]}]",
                "keep one entry per type",
            )
        seen[kind] = i
        soft, hard = rl.get("soft"), rl.get("hard")
        if isinstance(soft, int) and isinstance(hard, int) and soft > hard:
            raise ConfigError(
                filename,
                f"{path}[{i}].soft",
                f"soft limit {soft} is above the hard limit {hard} for {kind}",
                "make soft <= hard",
            )


def _check_namespaces(linux: dict[str, Any], filename: str) -> None:
    namespaces = linux.get("namespaces") or []
    seen: dict[str, int] = {}
    for i, ns in enumerate(namespaces):
        kind = ns.get("type")
        if kind in seen:
            raise ConfigError(
                filename,
                f"linux.namespaces[{i}].type",
                f"duplicate {kind} namespace (also linux.namespaces[{seen[kind]}])",
                "list each namespace type once",
            )
        seen[kind] = i
        if ns.get("path"):
            _check_namespace_path(kind, ns["path"], filename, f"linux.namespaces[{i}].path")

    user = namespaces[seen["user"]] if "user" in seen else None
    has_uid, has_gid = bool(linux.get("uidMappings")), bool(linux.get("gidMappings"))
    if user is None:
        if has_uid or has_gid:
            which = "linux.uidMappings" if has_uid else "linux.gidMappings"
            raise ConfigError(
                filename,
                which,
                "user namespace mappings specified, but user namespace isn't enabled in the config",
                'add {"type": "user"} to linux.namespaces or drop the mappings',
            )
    elif not user.get("path"):
        # A new user namespace needs mappings; a joined one (path) has its own.
        for field, present, kind in (
            ("uidMappings", has_uid, "uid"),
            ("gidMappings", has_gid, "gid"),
        ):
            if not present:
                raise ConfigError(
                    filename,
                    f"linux.{field}",
                    f"user namespaces enabled, but no {kind} mappings found",
                    "add linux.uidMappings and linux.gidMappings, or join a user namespace by path",
                )


def _check_namespace_path(kind: str, path: str, filename: str, json_path: str) -> None:
    """``path`` must be a namespace file of type ``kind`` (spec: MUST error otherwise)."""
    what = f"{'an' if kind[0] in 'aeiou' else 'a'} {kind} namespace"
    if not path.startswith("/"):
        raise ConfigError(
            filename, json_path, f"{_quote(path)} is not an absolute path", "start it with /"
        )
    proc_name, clone_flag = NAMESPACES[kind]
    try:
        st = posix.stat(path)
    except FileNotFoundError:
        raise ConfigError(
            filename,
            json_path,
            f"{path} does not exist",
            f"give the path of {what}, e.g. /proc/<pid>/ns/{proc_name}",
        ) from None
    except PermissionError:
        return  # cannot look; the join itself will report the real error
    except OSError as e:
        raise ConfigError(filename, json_path, f"{path}: {e.strerror}") from None
    # Every namespace file lives on the single nsfs superblock: compare st_dev
    # with one of our own namespace files.
    try:
        nsfs_dev = posix.stat(f"/proc/self/ns/{proc_name}").st_dev
    except OSError:
        return  # kernel without this namespace type or /proc: nothing to compare
    if st.st_dev != nsfs_dev:
        raise ConfigError(
            filename,
            json_path,
            f"{path} is not {what}",
            f"give the path of {what}, e.g. /proc/<pid>/ns/{proc_name}",
        )
    actual = _namespace_type_of(path)
    if actual is not None and actual != clone_flag:
        other = next((k for k, (_, flag) in NAMESPACES.items() if flag == actual), "another")
        raise ConfigError(
            filename,
            json_path,
            f"{path} is not {what} (it is a {other} namespace)",
            "fix the type or the path",
        )


def _namespace_type_of(path: str) -> int | None:
    """The CLONE_NEW* flag of a namespace file via NS_GET_NSTYPE; None if unknown."""
    try:
        fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC)
    except OSError:
        return None
    try:
        return fcntl.ioctl(fd, _NS_GET_NSTYPE)
    except OSError:
        return None  # kernel < 4.11
    finally:
        posix.close(fd)


def _is_bind(mount: dict[str, Any]) -> bool:
    options = mount.get("options") or []
    return mount.get("type") == "bind" or "bind" in options or "rbind" in options


def _check_mounts(mounts: Sequence[dict[str, Any]], bundle: str, filename: str) -> None:
    for i, mount in enumerate(mounts):
        dest = mount.get("destination", "")
        if not dest:
            raise ConfigError(
                filename,
                f"mounts[{i}].destination",
                "the destination is empty",
                "give the absolute path to mount on, e.g. /data",
            )
        if not dest.startswith("/"):
            # runtime-spec 1.3 allows (deprecated) relative destinations on
            # Linux, relative to "/"; runc 1.2+ warns and goes on.  So do we.
            debug.warn(
                f"{filename}: mounts[{i}].destination: {_shorten(repr(dest), 80)} is not"
                " absolute; taken relative to / (deprecated)"
            )
        if _is_bind(mount):
            source = mount.get("source")
            if not source:
                raise ConfigError(
                    filename,
                    f"mounts[{i}].source",
                    "a bind mount needs a source",
                    "set the host path to bind",
                )
            host = pathnames.join(bundle, source)  # relative sources are relative to the bundle
            if not pathnames.lexists(host):
                raise ConfigError(
                    filename,
                    f"mounts[{i}].source",
                    f"bind mount source {pathnames.abspath(host)} does not exist",
                    f"create it or fix the mount for {dest}",
                )


# -- the program to run ------------------------------------------------------


def _check_executable(config: dict[str, Any], rootfs: str, bundle: str, filename: str) -> None:
    """``process.args[0]`` must name an executable regular file in the container.

    Resolved like execvp(3) in the container: with a ``/`` relative to cwd,
    else through the ``PATH`` of ``process.env``.  Bind mounts from the config
    are honoured (docker --init binds docker-init over the rootfs); paths under
    other mounts, and configs whose hooks may add files, are not judged.
    """
    process = config["process"]
    prog: str = process["args"][0]
    cwd: str = process["cwd"]
    mounts = config.get("mounts") or []
    where = "process.args[0]"
    uncertain = _hooks_may_change_rootfs(config)

    if "/" in prog:
        candidates = [pathnames.join(cwd, prog)]
    else:
        candidates = [
            pathnames.join(cwd, d or ".", prog)
            for d in _env_path(process.get("env") or []).split(":")
        ]

    first_problem: str | None = None
    for container_path in candidates:
        verdict = _probe_program(container_path, rootfs, mounts, bundle)
        if verdict is None or verdict == "ok":
            return
        first_problem = first_problem or verdict
    if uncertain:
        _log().debug("%s: %s not found in the rootfs, but hooks may add it", filename, prog)
        return

    if "/" not in prog:
        path_value = _env_path(process.get("env") or [])
        raise ConfigError(
            filename,
            where,
            f'exec: "{prog}": executable file not found in $PATH',
            f"the rootfs {rootfs} has no such program in PATH={path_value}; "
            "fix process.args or process.env PATH",
        )
    assert first_problem is not None
    raise ConfigError(
        filename,
        where,
        f'exec: "{prog}": {first_problem}',
        f"the rootfs {rootfs} has no such program; fix process.args",
    )


def _env_path(env: Sequence[str]) -> str:
    """The PATH the container process will get (last PATH= wins, like setenv)."""
    value = None
    for entry in env:
        if entry.startswith("PATH="):
            value = entry[5:]
    return DEFAULT_PATH if value is None else value


def _probe_program(
    container_path: str, rootfs: str, mounts: Sequence[dict[str, Any]], bundle: str
) -> str | None:
    """ "ok", None (cannot judge), or runc-style problem text for one candidate."""
    try:
        host_path = resolve_in_root(rootfs, container_path)
    except OSError as e:
        return f"stat {container_path}: {e.strerror.lower()}"
    inside = "/" + pathnames.relpath(host_path, rootfs) if host_path != rootfs else "/"
    mounted = _host_path_via_mounts(inside, mounts, bundle)
    if mounted is False:
        return None  # under a tmpfs or similar: not ours to judge
    if mounted is not None:
        host_path = mounted
    try:
        st = posix.stat(host_path)
    except OSError as e:
        return f"stat {container_path}: {(e.strerror or 'error').lower()}"
    if not stat.S_ISREG(st.st_mode) or not st.st_mode & 0o111:
        return "permission denied"  # a directory too: Go's exec.LookPath's words
    return "ok"


def _host_path_via_mounts(
    inside: str, mounts: Sequence[dict[str, Any]], bundle: str
) -> str | bool | None:
    """Map a container path covered by a mount from the config.

    Returns the host path for bind mounts, ``False`` for other mount types
    (contents unknown before mounting) and ``None`` when no mount covers it.
    The last matching mount wins, as later mounts shadow earlier ones.
    """
    for mount in reversed(mounts):
        # normpath keeps a leading "//" (POSIX allows it to be special): strip it.
        dest = "/" + pathnames.normpath("/" + mount.get("destination", "")).lstrip("/")
        if inside != dest and not inside.startswith(dest.rstrip("/") + "/"):
            continue
        if not _is_bind(mount):
            return False
        rest = inside[len(dest) :].lstrip("/")
        source = pathnames.join(bundle, mount.get("source", ""))
        return resolve_in_root(source, rest) if rest else source
    return None


def _hooks_may_change_rootfs(config: dict[str, Any]) -> bool:
    hooks = config.get("hooks") or {}
    for name in _ROOTFS_CHANGING_HOOKS:
        for hook in hooks.get(name) or []:
            args = hook.get("args") or [hook.get("path", "")]
            if pathnames.basename(args[0]) not in _HARMLESS_HOOK_NAMES:
                return True
    return False


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if value is None:
        return "null"
    return "an object"
