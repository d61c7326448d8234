"""Fuzzed configs: hostile config.json files never crash, hang or leak.

Hypothesis starts from a valid config (``runc spec``'s, busybox rootfs, as the
``bundle`` fixture builds it), optionally adds known sections with plausible
content (resources, devices, seccomp, sysctl, mounts, user namespace and id
maps, time offsets, scheduler, ...), then applies one to three mutations at
places it picks in the result: a value of another JSON type, a huge or
negative or out-of-range number (and ``1.0``, ``NaN``, ``1e999``, 5000
digits), a huge string (up to 1 MiB), a string with NUL, a newline or
non-ASCII text, a path with ``..``, ``//``, ``/proc/self/fd/N`` or through a
symlink in the rootfs (absolute and relative ones pointing out of the rootfs,
a loop, a dangling one), a near-miss of an enum value (lower case, a letter
more or less), a deleted key (missing required fields), an unknown key, deep
nesting (up to 100 000 levels), a duplicated array entry, a duplicated object
key, and broken JSON text (cut short, a stray byte, a BOM).

Two tests, one property: every config either is accepted or is refused with
exactly one ``config.json: <JSON path>: <what>`` line whose JSON path leads
into the config (all but its last step exist); never a Python exception, a
hang, or a line of megabytes.

* ``test_fuzzed_config_validates_or_names_the_field`` (most examples): in this
  process, the code ``ocirt create`` runs before it makes anything
  (``ocirt.validate``'s load, schema and semantic checks, the host checks,
  the typed view ``ocirt.spec.Spec``, the state record as JSON and marshal).
  A ``signal.alarm`` bounds each example (a hang fails it).
* ``test_fuzzed_config_creates_or_fails_cleanly`` (a smaller share: an
  example costs a real create and delete): the real ``ocirt create`` binary,
  then ``ocirt delete --force`` if it succeeded.  It must refuse exactly as
  the in-process check did (the same sentence), or create the container and
  delete it with exit status 0, or fail at run time with one line that is not
  a Python error (no exception class names, no "internal error").  After each
  example: no state directory, no cgroup named after the id in any
  hierarchy, no mount whose path or source holds the bundle or the id, no
  process left (the test process is a child subreaper while it runs, so
  anything create leaves is re-parented to it and seen), nothing created in
  a directory outside the rootfs that the rootfs's symlinks point at, no
  schema-cache marker left by the example.  Configs the host must not run
  for real on a shared machine (joined namespaces, no mount namespace of its
  own, hooks, netDevices, a rootfs or bind source outside the bundle, a
  cgroupsPath outside "ocirt-test" names) are only checked in process.

CI runs a fixed seed (``derandomize``) with OCIRT_FUZZ_EXAMPLES (default 300)
in-process and OCIRT_FUZZ_CREATE_EXAMPLES (default 100) real creates; ``make
fuzz`` runs >= 10 000 with a random seed and prints the counts (the summary
line "fuzz: ...").  A failure prints the shrunk config and Hypothesis's seed.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import hashlib
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

hypothesis = pytest.importorskip("hypothesis", reason="pip install hypothesis (the test extra)")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from ocirt import _fastjson, cgroups, validate  # noqa: E402
from ocirt.errors import ConfigError  # noqa: E402
from ocirt.process import parent  # noqa: E402
from ocirt.spec import Spec  # noqa: E402

Json = Any
JsonPath = tuple[str | int, ...]

IN_PROCESS_EXAMPLES = int(os.environ.get("OCIRT_FUZZ_EXAMPLES", "300"))
CREATE_EXAMPLES = int(os.environ.get("OCIRT_FUZZ_CREATE_EXAMPLES", "100"))
# make fuzz sets OCIRT_FUZZ_RANDOM=1: a new seed each run; CI: always the same examples.
RANDOM_SEED = os.environ.get("OCIRT_FUZZ_RANDOM") == "1"
EXAMPLE_SECONDS = 20  # one in-process example (validation takes milliseconds)
CREATE_SECONDS = 60  # one ocirt create or delete on a busy 2-core host
MAX_LINE = 1000  # a clear line: what is wrong, not the megabyte that is

ID_PREFIX = "ocirt-test-fuzz"
CACHE_DIR = parent.validation_cache_dir()
SUMMARY: Counter[str] = Counter()
RUNTIME_FAILURES: Counter[str] = Counter()  # accepted configs the kernel then refused


def fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        derandomize=not RANDOM_SEED,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )


# --------------------------------------------------------------------------
# JSON text the `json` module will not write: duplicate keys, deep nesting,
# number literals, broken text.


class Raw:
    """A value written into the JSON text as it is."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"Raw({self.text[:60]!r}{'...' if len(self.text) > 60 else ''})"


class Pairs:
    """An object written with its keys in order, duplicates included."""

    def __init__(self, pairs: list[tuple[str, Json]]) -> None:
        self.pairs = pairs

    def __repr__(self) -> str:
        return f"Pairs({self.pairs!r})"


def to_text(value: Json) -> str:
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, Pairs):
        return "{" + ", ".join(f"{json.dumps(k)}: {to_text(v)}" for k, v in value.pairs) + "}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: {to_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(to_text(v) for v in value) + "]"
    if isinstance(value, float) and not math.isfinite(value):
        return "1e999" if value > 0 else "-1e999"
    return json.dumps(value)


def deep(depth: int, kind: str) -> Raw:
    if kind == "list":
        return Raw("[" * depth + "]" * depth)
    return Raw('{"a": ' * depth + "{}" + "}" * depth)


# --------------------------------------------------------------------------
# What the mutations draw from


SYMLINKS = {  # in the rootfs: name -> target (ESCAPE is the host directory they aim at)
    "fz-abs": "{escape}",
    "fz-rel": "../../../../../../../../{escape}",
    "fz-loop": "fz-loop",
    "fz-dangling": "/nonexistent/fz",
    "fz-dotdot": "..",
    "fz-proc": "/proc/self/root",
    "bin/fz-prog": "../../../../../../../../bin/sh",
}


def path_values() -> st.SearchStrategy[str]:
    symlinked = [f"/{name}" for name in SYMLINKS] + [f"/{name}/sub" for name in SYMLINKS]
    fixed = [
        "",
        ".",
        "..",
        "/",
        "//",
        "/..",
        "/../../../../tmp",
        "../../../../etc/passwd",
        "/a/../../b",
        "/proc/self/fd/3",
        "/proc/self/fd/7/..",
        "/proc/1/root",
        "/dev/null",
        "/sys/fs/cgroup",
        "relative/path",
        "/tmp/./x/",
        "/a\x00b",
        "/a\nb",
        "/\u00e9t\u00e9",
        "/" + "a/" * 600,
        "/" + "a" * 300,
        *symlinked,
    ]
    return st.one_of(
        st.sampled_from(fixed),
        st.lists(st.sampled_from(["..", ".", "a", "fz-abs", "fz-rel", "bin", ""]), max_size=6).map(
            lambda parts: "/" + "/".join(parts)
        ),
    )


def huge_strings() -> st.SearchStrategy[str]:
    return st.tuples(
        st.sampled_from([65, 256, 4097, 65536, 1 << 20]), st.sampled_from("Ax/\x00")
    ).map(lambda t: t[1] * t[0])


INT_EDGES = [
    0,
    -1,
    1,
    7,
    255,
    256,
    1000,
    1001,
    65535,
    65536,
    2**31 - 1,
    2**31,
    2**32 - 1,
    2**32,
    2**53 + 1,
    2**63 - 1,
    2**63,
    2**64 - 1,
    2**64,
    -(2**31),
    -(2**63),
    -(2**63) - 1,
    10**30,
]


def numbers() -> st.SearchStrategy[Json]:
    return st.one_of(
        st.sampled_from(INT_EDGES),
        st.integers(),
        st.sampled_from(
            [
                Raw("1.0"),
                Raw("-0"),
                Raw("0.5"),
                Raw("1e999"),
                Raw("-1e999"),
                Raw("NaN"),
                Raw("Infinity"),
                Raw("1" + "0" * 5000),
                Raw("1e400"),
                Raw("-0.0"),
            ]
        ),
        st.floats(allow_nan=False, allow_infinity=False),
    )


def scalars() -> st.SearchStrategy[Json]:
    return st.one_of(
        st.sampled_from([None, True, False, "", "0", "-1", "true", "null", [], {}, [""], {"": 0}]),
        numbers(),
        st.text(max_size=20),
        huge_strings(),
        path_values(),
    )


def hostile_values() -> st.SearchStrategy[Json]:
    nesting = st.tuples(
        st.sampled_from([8, 50, 101, 500, 2000, 100_000]), st.sampled_from(["list", "dict"])
    )
    return st.one_of(
        scalars(),
        nesting.map(lambda t: deep(*t)),
        st.lists(scalars(), max_size=4),
        st.dictionaries(st.text(max_size=8), scalars(), max_size=3),
    )


def near_misses(value: str) -> list[str]:
    """Wrong enum values that look right."""
    return [
        value.lower(),
        value.upper(),
        value + "X",
        value[:-1],
        " " + value,
        value + "\x00",
        value.replace("_", "-"),
    ]


# Sections to add before mutating: (path, value).  "{bundle}" and "{id}" are
# filled in when the config is written.  HOST_ONLY ones are never run for real.
SECTIONS: list[tuple[JsonPath, Json]] = [
    (("linux", "resources"), {
        "memory": {"limit": 268435456, "reservation": 134217728, "swappiness": 10},
        "pids": {"limit": 64},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
        "blockIO": {"weight": 500},
        "devices": [{"allow": False, "access": "rwm"},
                    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"}],
    }),
    (("linux", "devices"), [{"path": "/dev/fz0", "type": "c", "major": 1, "minor": 3,
                             "fileMode": 438, "uid": 0, "gid": 0}]),
    (("linux", "sysctl"), {"net.ipv4.ip_forward": "0", "kernel.shmmax": "65536"}),
    (("linux", "seccomp"), {
        "defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                      "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_NE"}]}],
    }),
    (("linux", "timeOffsets"), {"monotonic": {"secs": 10, "nanosecs": 0}}),
    (("linux", "personality"), {"domain": "LINUX32"}),
    (("linux", "rootfsPropagation"), "rslave"),
    (("linux", "memoryPolicy"), {"mode": "MPOL_BIND", "nodes": "0"}),
    (("linux", "intelRdt"), {"closID": "fz"}),
    (("linux", "cgroupsPath"), "/{id}-cg"),
    (("linux", "cgroupsPath"), "{id}-x/../{id}-b"),
    (("process", "scheduler"), {"policy": "SCHED_OTHER", "nice": 5}),
    (("process", "ioPriority"), {"class": "IOPRIO_CLASS_BE", "priority": 4}),
    (("process", "execCPUAffinity"), {"initial": "0", "final": "0-1"}),
    (("process", "consoleSize"), {"height": 25, "width": 80}),
    (("process", "oomScoreAdj"), 100),
    (("process", "user", "additionalGids"), [1, 2]),
    (("process", "user", "umask"), 18),
    (("process", "apparmorProfile"), "fz"),
    (("process", "selinuxLabel"), "system_u:system_r:container_t:s0"),
    (("domainname",), "fz.example"),
    (("annotations",), {"org.example.fz": "1", "org.systemd.property.CPUWeight": "100"}),
    (("mounts", -1), {"destination": "/fz-tmp", "type": "tmpfs", "source": "tmpfs",
                      "options": ["nosuid", "size=1m", "mode=755"]}),
    (("mounts", -1), {"destination": "/fz-bind", "type": "bind", "source": "hostdir",
                      "options": ["rbind", "ro"]}),
    (("mounts", -1), {"destination": "/fz-abs/sub", "type": "tmpfs", "source": "tmpfs"}),
    (("mounts", -1), {"destination": "/fz-rel", "type": "bind", "source": "hostdir",
                      "options": ["bind"]}),
    (("mounts", -1), {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                      "options": ["ro", "nosuid"]}),
    (("mounts", -1), {"destination": "/fz-idmap", "type": "bind", "source": "hostdir",
                      "options": ["bind", "idmap"],
                      "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
                      "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}]}),
    (("linux", "maskedPaths", -1), "/fz-abs"),
    (("linux", "readonlyPaths", -1), "/fz-rel"),
]  # fmt: skip
USER_NAMESPACE = {
    "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
    "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
}
HOST_ONLY_SECTIONS: list[tuple[JsonPath, Json]] = [
    (("hooks",), {"prestart": [{"path": "/bin/true", "args": ["true"], "timeout": 5}],
                  "poststop": [{"path": "/bin/true"}]}),
    (("linux", "netDevices"), {"fz0": {"name": "fz1"}}),
    (("linux", "namespaces", -1), {"type": "cgroup", "path": "/proc/self/ns/cgroup"}),
    (("linux", "cgroupsPath"), "/"),
    (("linux", "cgroupsPath"), "/.."),
    (("linux", "cgroupsPath"), "../.."),
    (("root", "path"), "/"),
    (("root", "path"), "rootfs/../../.."),
]  # fmt: skip


# --------------------------------------------------------------------------
# Walking and changing the config


def slots(value: Json, path: JsonPath = ()) -> Iterator[JsonPath]:
    """Every path to a value inside VALUE (not VALUE itself)."""
    stack: list[tuple[Json, JsonPath]] = [(value, path)]
    while stack:
        node, where = stack.pop()
        if isinstance(node, dict):
            items: Any = node.items()
        elif isinstance(node, list):
            items = enumerate(node)
        else:
            continue
        for key, child in items:
            yield (*where, key)
            stack.append((child, (*where, key)))


def get(config: Json, path: JsonPath) -> Json:
    for step in path:
        config = config[step]
    return config


def put(config: Json, path: JsonPath, value: Json) -> None:
    """Set PATH (creating missing objects; -1 as the last step appends)."""
    node = config
    for i, step in enumerate(path[:-1]):
        if isinstance(node, dict) and not isinstance(node.get(step), (dict, list)):
            node[step] = [] if path[i + 1] == -1 else {}
        node = node[step]
    last = path[-1]
    if isinstance(node, list) and last == -1:
        node.append(value)
    else:
        node[last] = value


@st.composite
def mutated_configs(draw: st.DrawFn, base: Json, host_safe: bool) -> tuple[Json, list[str]]:
    """BASE with sections added and 1-3 mutations applied; and what was done."""
    config = copy.deepcopy(base)
    done: list[str] = []
    catalogue = SECTIONS if host_safe else SECTIONS + HOST_ONLY_SECTIONS
    for index in draw(st.lists(st.integers(0, len(catalogue) - 1), max_size=3, unique=True)):
        path, value = catalogue[index]
        put(config, path, copy.deepcopy(value))
        done.append(f"add {path}")
    if draw(st.booleans()) and draw(st.booleans()):
        put(config, ("linux", "namespaces", -1), {"type": "user"})
        config["linux"].update(copy.deepcopy(USER_NAMESPACE))
        done.append("add user namespace")
    for _ in range(draw(st.integers(1, 3))):
        if not isinstance(config, dict):
            break  # broken text or a top level of duplicate keys: nothing left to walk
        config, what = draw(one_mutation(config))
        done.append(what)
    return config, done


@st.composite
def one_mutation(draw: st.DrawFn, config: Json) -> tuple[Json, str]:
    kind = draw(st.sampled_from(
        ["replace", "replace", "number", "string", "path", "enum", "delete", "unknown",
         "duplicate", "duplicate_key", "text"]
    ))  # fmt: skip
    if kind == "text":
        return Raw(draw(broken_text(to_text(config)))), "broken JSON text"
    places = list(slots(config))
    path = draw(st.sampled_from(places))
    parent_path, key = path[:-1], path[-1]
    holder = get(config, parent_path)
    old = holder[key]
    if kind == "replace":
        holder[key] = draw(hostile_values())
    elif kind == "number":
        holder[key] = draw(numbers())
    elif kind == "string":
        holder[key] = draw(st.one_of(huge_strings(), st.text(max_size=30), path_values()))
    elif kind == "path":
        holder[key] = draw(path_values())
    elif kind == "enum":
        if not isinstance(old, str) or not old:
            return config, f"enum at {path}: not a string, unchanged"
        holder[key] = draw(st.sampled_from(near_misses(old)))
    elif kind == "delete":
        del holder[key]
    elif kind == "unknown":
        target = old if isinstance(old, dict) else holder
        if isinstance(target, dict):
            name = draw(st.sampled_from(["x-fuzz", "Process", "ociversion", "args ", "", "\x00"]))
            target[name] = draw(hostile_values())
    elif kind == "duplicate":
        if isinstance(old, list) and old:
            old.append(copy.deepcopy(old[draw(st.integers(0, len(old) - 1))]))
        elif isinstance(holder, list):
            holder.insert(key, copy.deepcopy(old))
    elif kind == "duplicate_key" and isinstance(holder, dict):
        pairs = [*holder.items(), (key, draw(hostile_values()))]
        if parent_path:
            get(config, parent_path[:-1])[parent_path[-1]] = Pairs(pairs)
        else:
            config = Pairs(pairs)
    return config, f"{kind} at {path}"


@st.composite
def broken_text(draw: st.DrawFn, text: str) -> str:
    how = draw(st.sampled_from(["cut", "byte", "bom", "empty", "array", "trailing"]))
    if how == "cut":
        return text[: draw(st.integers(0, len(text) - 1))]
    if how == "byte":
        at = draw(st.integers(0, len(text)))
        return text[:at] + draw(st.sampled_from(["\x00", "\xff", "}", '"', ",", "\\"])) + text[at:]
    return {"bom": "\ufeff" + text, "empty": "", "array": "[" + text + "]"}.get(how, text + " x")


# --------------------------------------------------------------------------
# The property, in process


def config_bytes(config: Json, bundle: Path, container_id: str) -> bytes:
    text = to_text(config).replace("{bundle}", str(bundle)).replace("{id}", container_id)
    return text.encode("utf-8", "surrogatepass")


def expected_refusal(bundle: Path, raw: bytes, container_id: str) -> ConfigError | None:
    """What create's checks say of RAW: None (accepted) or the ConfigError.

    Anything else escaping is the bug this test exists for.
    """
    (bundle / "config.json").write_bytes(raw)
    with alarm(EXAMPLE_SECONDS):
        try:
            config, raw = validate.load_config(str(bundle))
            validate.validate_config(config, raw, bundle=str(bundle))
            spec = Spec.from_dict(config, str(bundle))
            validate.check_host_support(config)
        except ConfigError as e:
            return e
        # What create does next with the config before it makes anything.
        record = parent._record(spec, config, container_id, str(bundle))
        _fastjson.loads(_fastjson.dumps(record))
        import marshal

        marshal.dumps(record)
        cgroups.clean_path(spec.linux.cgroups_path)
    return None


def assert_clear(error: ConfigError, raw: bytes) -> None:
    """One line: config.json, a JSON path into the config, what is wrong."""
    line = str(error)
    assert error.filename == "config.json", line
    assert "\n" not in line and "\r" not in line, line
    assert "\x00" not in line, line
    assert len(line) <= MAX_LINE, f"{len(line)} characters: {line[:300]}..."
    assert error.problem.strip(), line
    assert line.startswith(
        f"config.json: {error.json_path}: " if error.json_path else "config.json: "
    )
    if error.json_path:
        steps = parse_json_path(error.json_path)
        assert steps is not None, f"not a JSON path: {error.json_path!r} in {line}"
        assert_leads_into(json.loads(raw), steps, line)  # it parsed, or there is no path


def assert_leads_into(config: Json, steps: list[str | int], line: str) -> None:
    """The JSON path exists in CONFIG up to a missing key (the field to add);
    a key abbreviated in the message ("..." in it) matches by its start."""
    node = config
    for step in steps:
        if isinstance(step, int):
            assert isinstance(node, list) and step < len(node), f"no such place: {line}"
            node = node[step]
            continue
        assert isinstance(node, dict), f"no such place: {line}"
        if "... (" in step and step not in node:
            head = step.split("... (")[0]
            step = next((key for key in node if key.startswith(head)), step)
        if step not in node:
            return  # the missing field the error asks for
        node = node[step]


_PATH_STEP = re.compile(r'\.?([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]')


def parse_json_path(text: str) -> list[str | int] | None:
    steps: list[str | int] = []
    at = 0
    while at < len(text):
        m = _PATH_STEP.match(text, at)
        if not m or (at == 0 and text.startswith(".")):
            return None
        name, index, quoted = m.groups()
        steps.append(name if name is not None else int(index) if index else json.loads(quoted))
        at = m.end()
    return steps


@contextlib.contextmanager
def alarm(seconds: int) -> Iterator[None]:
    def expired(signum: int, frame: object) -> None:
        raise TimeoutError(f"validation hung for {seconds} s")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


# --------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def fuzz_bundle(tmp_path_factory: pytest.TempPathFactory, _bundle_template: Path) -> Path:
    """A busybox bundle with hostile symlinks in its rootfs, and a host
    directory (escape/) they aim at, which must stay empty."""
    top = tmp_path_factory.mktemp("fuzz")
    bundle = top / "bundle"
    subprocess.run(["cp", "-a", str(_bundle_template), str(bundle)], check=True)
    escape = top / "escape"
    escape.mkdir()
    (bundle / "hostdir").mkdir()
    (bundle / "hostdir" / "file").write_text("host\n")
    rootfs = bundle / "rootfs"
    for name, target in SYMLINKS.items():
        link = rootfs / name
        link.unlink(missing_ok=True)
        link.symlink_to(
            target.format(escape=str(escape).lstrip("/") if "../" in target else escape)
        )
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["args"] = ["true"]
    (bundle / "base.json").write_text(json.dumps(config))
    return bundle


def base_config(bundle: Path) -> Json:
    return json.loads((bundle / "base.json").read_text())


def snapshot(bundle: Path) -> tuple[list[str], list[str]]:
    """What lies outside the rootfs: the bundle's entries and the escape dir's."""
    return sorted(os.listdir(bundle)), sorted(os.listdir(bundle.parent / "escape"))


# --------------------------------------------------------------------------
# Test 1: in process, many examples


@pytest.fixture(scope="module")
def validation_bundle(fuzz_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle of its own (the config is rewritten per example), same rootfs."""
    bundle = tmp_path_factory.mktemp("fuzz-validate") / "bundle"
    bundle.mkdir()
    (bundle / "rootfs").symlink_to(fuzz_bundle / "rootfs")
    (bundle / "hostdir").symlink_to(fuzz_bundle / "hostdir")
    return bundle


def test_fuzzed_config_validates_or_names_the_field(
    fuzz_bundle: Path, validation_bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = base_config(fuzz_bundle)
    counts: Counter[str] = Counter()

    @fuzz_settings(IN_PROCESS_EXAMPLES)
    @given(mutated_configs(base, host_safe=False))
    def check(case: tuple[Json, list[str]]) -> None:
        config, _done = case
        raw = config_bytes(config, validation_bundle, f"{ID_PREFIX}-x")
        error = expected_refusal(validation_bundle, raw, f"{ID_PREFIX}-x")
        if error is None:
            counts["accepted"] += 1
        else:
            assert_clear(error, raw)
            counts["refused"] += 1

    check()
    SUMMARY["in-process"] += counts.total()
    report(capsys, f"in process: {counts.total()} configs through ocirt.validate ({dict(counts)})")


# What the fuzzer found: each escaped ocirt.validate as a Python exception
# (or, through ocirt create, as "internal error: TypeError" from the init, a
# state.json that no command could read back, an init that died with
# "container init exited prematurely", a megabyte-long line), before the fix
# in ocirt/validate.py that the comment names.  Checked: each case fails
# against validate.py as it was before the fuzzer (git show fc92e30:ocirt/validate.py,
# in a copy of the tree).


def _unknown(value: Json) -> Callable[[Json], None]:
    return lambda c: c.__setitem__("x-vendor", value)


FINDINGS: list[tuple[str, Callable[[Json], Any], str, str]] = [
    # parse_json_object: RecursionError from the C scanner
    ("deep-parse", _unknown(deep(100_000, "list")), "", "nested too deeply to parse"),
    # the same behind a BOM, which only the second parser (json) reads
    ("deep-parse-bom", lambda c: Raw("\ufeff" + to_text({**c, "x": deep(100_000, "list")})),
     "", "nested too deeply to parse"),
    # _check_structure: _fastjson.dumps(record) recursed too deep (state.json)
    ("deep-unknown", _unknown(deep(900, "dict")), '["x-vendor"]' + ".a" * 63, "levels deep"),
    # _parse_for_error: ValueError "Exceeds the limit (4300 digits)"
    ("digits", _unknown(Raw("1" + "0" * 5000)), "", "a number is too long to read"),
    # _check_structure: "inf" in state.json, which _fastjson.loads refused
    ("infinity", _unknown(Raw("1e999")), '["x-vendor"]', "is not a JSON number"),
    ("nan", _unknown(Raw("NaN")), '["x-vendor"]', "is not a JSON number"),
    # _check_structure: "embedded null byte" (ValueError) in the init
    ("nul-arg", lambda c: c["process"]["args"].__setitem__(0, "tr\x00ue"), "process.args[0]",
     "contains a NUL character"),
    ("nul-cwd", lambda c: c["process"].__setitem__("cwd", "/tmp\x00x"), "process.cwd",
     "contains a NUL character"),
    ("nul-key", lambda c: c["linux"].__setitem__("sysctl", {"net.\x00": "1"}), "linux.sysctl",
     "contains a NUL character"),
    # _strict_integers: JSON Schema's integer accepts 1.0; the init's setrlimit did not
    ("float-int", lambda c: c["process"]["rlimits"][0].__setitem__("hard", Raw("1.0")),
     "process.rlimits[0].hard", "1.0 is not of type 'integer'"),
    # readable(): a 1 MiB line naming a 1 MiB string
    ("huge-version", lambda c: c.__setitem__("ociVersion", "A" * (1 << 20)), "ociVersion",
     "characters) ..."),
    ("huge-key", lambda c: c.__setitem__("annotations", {"k" * 70000: 5}),
     f'annotations["{"k" * 40}... (70000 characters) ...{"k" * 15}"]',
     "5 is not of type 'string'"),
    # _check_lengths: sethostname EINVAL killed the init ("exited prematurely")
    ("hostname", lambda c: c.__setitem__("hostname", "h" * 65), "hostname", "longer than 64"),
    ("name-max", lambda c: c["process"].__setitem__("cwd", "/" + "d" * 256), "process.cwd",
     "longer than 255 bytes"),
    ("path-max", lambda c: c["mounts"][0].__setitem__("destination", "/d" * 2048),
     "mounts[0].destination", "must be shorter than 4096"),
    # _check_mounts: "error mounting ... to rootfs at ''"
    ("empty-destination", lambda c: c["mounts"][0].__setitem__("destination", ""),
     "mounts[0].destination", "the destination is empty"),
    # _check_cgroups_path: the host's root cgroup joined (and killed from by delete)
    ("root-cgroup", lambda c: c["linux"].__setitem__("cgroupsPath", "//"), "linux.cgroupsPath",
     "is the root cgroup"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("change", "json_path", "fragment"),
    [case[1:] for case in FINDINGS],
    ids=[case[0] for case in FINDINGS],
)
def test_fuzzer_findings_are_refused_by_field(
    fuzz_bundle: Path,
    validation_bundle: Path,
    change: Callable[[Json], Any],
    json_path: str,
    fragment: str,
) -> None:
    config = base_config(fuzz_bundle)
    config = change(config) or config  # some return a whole new text
    raw = config_bytes(config, validation_bundle, f"{ID_PREFIX}-x")
    error = expected_refusal(validation_bundle, raw, f"{ID_PREFIX}-x")
    assert error is not None, "accepted"
    assert error.json_path == json_path, str(error)
    assert fragment in error.problem, str(error)
    assert_clear(error, raw)


# --------------------------------------------------------------------------
# Test 2: the real binary


PR_SET_CHILD_SUBREAPER = 36
DEPRECATED = re.compile(  # a plain line, or runc's warning record
    r'(time="[^"]*" level=warning msg=")?config\.json: mounts\[\d+\]\.destination: '
    r'.{1,130} is not absolute; taken relative to / \(deprecated\)"?'
)
# A run-time failure is one line in runc's words, not a Python error escaping.
PYTHON_ERROR = re.compile(
    r"Traceback|\b[A-Za-z]*(Error|Exception|Interrupt|Exit)\b:|internal error|exited prematurely"
)


@pytest.fixture
def subreaper() -> Iterator[None]:
    """Orphans of what the test runs become our children: we see what is left."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        pytest.skip(f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(ctypes.get_errno())}")
    try:
        yield
    finally:
        libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
        reap_children()


def children() -> list[tuple[int, str]]:
    """(pid, state) of every process whose parent is this one."""
    me = str(os.getpid())
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[1] == me:
            found.append((int(name), fields[0]))
    return found


def reap_children() -> list[str]:
    """Reap zombies; kill and reap live children; describe the live ones."""
    for _ in range(40):  # a killed process takes a moment to become a zombie
        if all(state == "Z" for _, state in children()):
            break
        time.sleep(0.05)
    left = []
    for pid, state in children():
        if state != "Z":
            left.append(f"{pid} ({Path(f'/proc/{pid}/cmdline').read_bytes()[:80]!r}, {state})")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    return left


def cgroup_dirs_named(container_id: str, config: Json) -> list[str]:
    """Cgroup directories that hold the id, in every hierarchy: under our own
    cgroup (a relative cgroupsPath, or none) and at the config's path."""
    own = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        own[controllers] = path
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        fstype = fields[fields.index("-") + 1]
        if fstype in ("cgroup", "cgroup2"):
            mounts.append(fields[4])
    wanted = [container_id]
    linux = config.get("linux") if isinstance(config, dict) else None
    path = linux.get("cgroupsPath") if isinstance(linux, dict) else None
    if isinstance(path, str) and container_id in path:
        wanted.append(cgroups.clean_path(path).lstrip("/"))
        wanted.append(cgroups.clean_path(path).split(container_id)[0].lstrip("/") + container_id)
    found = []
    for mount in mounts:
        for base in {"/", *own.values()}:
            for name in wanted:
                candidate = os.path.normpath(f"{mount}/{base}/{name}")
                if container_id in candidate and os.path.isdir(candidate):
                    found.append(candidate)
    return sorted(set(found))


def remove_test_cgroups(paths: list[str]) -> None:
    for path in sorted(paths, key=len, reverse=True):
        with contextlib.suppress(OSError):
            for child, _dirs, _files in sorted(os.walk(path), key=lambda t: -len(t[0])):
                with contextlib.suppress(OSError):
                    os.rmdir(child)


def mounts_mentioning(*needles: str) -> list[str]:
    lines = Path("/proc/self/mountinfo").read_text().splitlines()
    return [line for line in lines if any(n in line for n in needles)]


def host_safe(config: Json, bundle: Path) -> bool:
    """Whether this config may run for real on a shared host (see the docstring)."""
    if not isinstance(config, dict) or config.get("hooks"):
        return False
    linux = config.get("linux")
    if not isinstance(linux, dict) or linux.get("netDevices"):
        return False
    namespaces = linux.get("namespaces")
    if not isinstance(namespaces, list) or not all(isinstance(ns, dict) for ns in namespaces):
        return False
    if any(ns.get("path") for ns in namespaces):
        return False
    if not any(ns.get("type") == "mount" for ns in namespaces):
        return False
    cgroups_path = linux.get("cgroupsPath", "")
    if cgroups_path and not (
        isinstance(cgroups_path, str)
        and all(ID_PREFIX in part for part in cgroups.clean_path(cgroups_path).split("/") if part)
        and cgroups.clean_path(cgroups_path).strip("/")
    ):
        return False
    root = config.get("root")
    if not isinstance(root, dict) or not isinstance(root.get("path"), str):
        return False
    if not inside(bundle, bundle / root["path"]):
        return False
    for mount in config.get("mounts") or []:
        if not isinstance(mount, dict):
            return False
        options = mount.get("options") or []
        if mount.get("type") == "bind" or "bind" in options or "rbind" in options:
            source = mount.get("source")
            if not isinstance(source, str) or not inside(bundle / "hostdir", bundle / source):
                return False
    return True


def inside(top: Path, path: Path) -> bool:
    try:
        real = os.path.realpath(path)
    except (ValueError, OSError):
        return False
    return real == str(top) or real.startswith(f"{top}/")


def run_ocirt(ocirt_bin: str, root: Path, *args: str, out: Path) -> tuple[int, str]:
    """(exit status, stderr) of ocirt; output to files: a created init keeps pipes open."""
    with open(out, "wb") as stdout, open(f"{out}.err", "wb+") as stderr:
        try:
            proc = subprocess.run(
                [ocirt_bin, "--root", str(root), *args],
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                timeout=CREATE_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"ocirt {args[0]} hung for {CREATE_SECONDS} s")
        stderr.seek(0)
        return proc.returncode, stderr.read().decode(errors="replace")


def forget_schema_verdict(raw: bytes, existed: bool) -> None:
    """The example's schema-cache marker, if it made one (a cache, but not ours to fill)."""
    if existed:
        return
    digest = hashlib.sha256(raw + b"\0" + validate.SCHEMA_VERSION.encode()).hexdigest()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(CACHE_DIR, digest))


def marker_exists(raw: bytes) -> bool:
    digest = hashlib.sha256(raw + b"\0" + validate.SCHEMA_VERSION.encode()).hexdigest()
    return os.path.exists(os.path.join(CACHE_DIR, digest))


def test_fuzzed_config_creates_or_fails_cleanly(
    ocirt_bin: str,
    tmp_root: Path,
    fuzz_bundle: Path,
    validation_bundle: Path,
    subreaper: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    base = base_config(fuzz_bundle)
    counts: Counter[str] = Counter()
    serial = iter(range(1, 1 << 30))
    before = snapshot(fuzz_bundle)
    out = tmp_root.parent / f"{tmp_root.name}.out"

    @fuzz_settings(CREATE_EXAMPLES)
    @given(mutated_configs(base, host_safe=True))
    def check(case: tuple[Json, list[str]]) -> None:
        config, _done = case
        container_id = f"{ID_PREFIX}-{os.getpid()}-{next(serial)}"
        raw = config_bytes(config, fuzz_bundle, container_id)
        refusal = expected_refusal(validation_bundle, raw, container_id)
        parsed = json.loads(raw) if refusal is None else None
        # The same sentence, about the bundle create is given.
        expected = (
            str(refusal).replace(str(validation_bundle), str(fuzz_bundle)) if refusal else None
        )
        if expected is None and not host_safe(parsed, fuzz_bundle):
            counts["accepted, not run on this host"] += 1
            return
        had_marker = marker_exists(raw)
        (fuzz_bundle / "config.json").write_bytes(raw)
        try:
            status, stderr = run_ocirt(
                ocirt_bin, tmp_root, "create", "--bundle", str(fuzz_bundle), container_id, out=out
            )
            outcome = judge(ocirt_bin, tmp_root, container_id, status, stderr, expected, out)
            counts[outcome] += 1
        finally:
            forget_schema_verdict(raw, had_marker)
            assert_nothing_left(ocirt_bin, tmp_root, fuzz_bundle, container_id, parsed, before)

    check()
    SUMMARY["create"] += counts.total()
    report(capsys, f"ocirt create: {counts.total()} configs ({dict(counts)})")
    for reason, times in RUNTIME_FAILURES.most_common(12):
        report(capsys, f"  failed at run time {times}x: {reason}")


def judge(
    ocirt_bin: str,
    root: Path,
    container_id: str,
    status: int,
    stderr: str,
    expected: str | None,
    out: Path,
) -> str:
    """Check one create's outcome; return its name for the summary."""
    # runc's one warning a valid config can cause, printed before the outcome.
    lines = [line for line in stderr.splitlines() if not DEPRECATED.fullmatch(line)]
    if status == 0:
        assert expected is None, f"create accepted what validation refuses: {expected}"
        deleted, delete_err = run_ocirt(ocirt_bin, root, "delete", "--force", container_id, out=out)
        assert deleted == 0, f"delete --force failed: {delete_err}"
        return "created and deleted"
    assert len(lines) == 1, f"create exited {status} with {len(lines)} lines:\n{stderr[:3000]}"
    message = re.fullmatch(r'time="[^"]*" level=error msg=(".*")', lines[0])
    assert message, f"not runc's error record: {lines[0][:500]}"
    text = json.loads(message.group(1))
    assert text.startswith("ocirt create failed: "), text[:500]
    reason = text.removeprefix("ocirt create failed: ")
    if expected is not None:
        assert reason == expected, f"create said {reason[:500]!r}, validation {expected}"
        return "refused by validation"
    assert not PYTHON_ERROR.search(reason), f"a Python error, not a sentence: {reason[:500]}"
    # A run-time error may name a source and a destination in full (each < PATH_MAX).
    assert len(reason) <= 3 * 4096, reason[:500]
    RUNTIME_FAILURES[re.sub(r"\d+", "N", reason)[:160]] += 1
    return "failed at run time"


def assert_nothing_left(
    ocirt_bin: str,
    root: Path,
    bundle: Path,
    container_id: str,
    config: Json,
    before: tuple[list[str], list[str]],
) -> None:
    problems = []
    if (root / container_id).exists():
        problems.append(f"state dir {root / container_id}")
        run_ocirt(ocirt_bin, root, "delete", "-f", container_id, out=root.parent / "cleanup.out")
    left_cgroups = cgroup_dirs_named(container_id, config if config is not None else {})
    if left_cgroups:
        problems.append(f"cgroups {left_cgroups}")
        remove_test_cgroups(left_cgroups)
    left_mounts = mounts_mentioning(str(bundle), container_id)
    if left_mounts:
        problems.append(f"mounts {left_mounts}")
        for line in reversed(left_mounts):
            subprocess.run(["umount", "-l", line.split()[4]], capture_output=True, check=False)
    left_processes = reap_children()
    if left_processes:
        problems.append(f"processes {left_processes}")
    after = snapshot(bundle)
    if after != before:
        problems.append(f"files outside the rootfs: {before} -> {after}")
    assert not problems, f"left behind by {container_id}: {'; '.join(problems)}"


def report(capsys: pytest.CaptureFixture[str], line: str) -> None:
    """Print past pytest's capture: make fuzz's count."""
    with capsys.disabled():
        print(f"\nfuzz: {line}", flush=True)


@pytest.fixture(scope="module", autouse=True)
def fuzz_total(request: pytest.FixtureRequest) -> Iterator[None]:
    """After the module: the total, the line make fuzz reports."""
    yield
    total = SUMMARY["in-process"] + SUMMARY["create"]
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        print(
            f"\nfuzz: {total} examples in all ({SUMMARY['in-process']} in process through "
            f"ocirt.validate, {SUMMARY['create']} through ocirt create)",
            flush=True,
        )
