"""The generated schema check (ocirt/_schema_fast.py) agrees with jsonschema.

``ocirt create`` takes the generated module's verdict and asks jsonschema only
when it refuses a config (ocirt/_shim/build_schema.py says why).  A config the
generated code accepts but jsonschema refuses would slip through: these tests
compare the two verdicts on the configs podman, containerd, dockerd and swarm
generate (../shared/reference/configs), on `ocirt spec`'s, and on every
mutation of them that replaces one value (each leaf and each object: wrong
types, out-of-range numbers, floats for integers, bad enum strings, empty and
relative paths, unknown keys).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ocirt import specgen, validate

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "configs"
REPLACEMENTS: tuple[Any, ...] = ("x", "relative/path", -1, 2**63, 1.0, None, True, [], {"k": 1})


def base_configs() -> list[tuple[str, dict[str, Any]]]:
    configs = [("ocirt spec", specgen.default_spec()), ("ocirt spec --rootless",
               specgen.default_spec(rootless=True))]  # fmt: skip
    for path in sorted(REFERENCE.glob("*.json")) if REFERENCE.is_dir() else ():
        data = json.loads(path.read_text())
        # A config.json (not an exec process or an update); the -tty ones differ little.
        if "ociVersion" in data and "-tty" not in path.name:
            configs.append((path.name, data))
    return configs


def leaf_paths(node: Any, path: tuple = ()) -> Iterator[tuple]:
    yield path
    if isinstance(node, dict):
        for key, value in node.items():
            yield from leaf_paths(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node[:2]):  # the first items stand for the rest
            yield from leaf_paths(value, (*path, index))


def replaced(config: dict[str, Any], path: tuple, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(config)
    node = out
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return out


def jsonschema_accepts(instance: dict[str, Any], ref: str = "config-schema.json") -> bool:
    try:
        validate._schema_check(instance, ref, "config.json", prefix="")
    except validate.ConfigError:
        return False
    return True


def generated(module: str) -> Any:
    try:
        loaded = __import__(f"ocirt.{module}", fromlist=["validate"])
    except ImportError:
        pytest.skip(f"ocirt/{module}.py is not built (python -m ocirt._shim.build_schema)")
    checkout = Path(validate.__file__).resolve().parents[1] / "schemas"
    if validate._schemas_stamp(str(checkout)) != loaded.SCHEMA_STAMP:
        pytest.fail(f"ocirt/{module}.py is stale: python -m ocirt._shim.build_schema")
    return loaded


@pytest.fixture(scope="module")
def fast() -> Any:
    return generated("_schema_fast")


@pytest.fixture(scope="module")
def fast_process() -> Any:
    return generated("_schema_fast_process")


def fast_accepts(fast: Any, config: dict[str, Any]) -> bool:
    try:
        fast.validate(config)
    except fast.JsonSchemaValueException:
        return False
    return True


@pytest.mark.parametrize(("name", "config"), base_configs(), ids=lambda v: str(v)[:30])
def test_verdicts_agree_on_every_one_value_mutation(fast: Any, name: str, config: dict) -> None:
    disagreements = []
    checked = 0
    assert fast_accepts(fast, config) == jsonschema_accepts(config) is True, name
    for path in leaf_paths(config):
        if not path:
            continue
        for value in REPLACEMENTS:
            mutated = replaced(config, path, value)
            checked += 1
            theirs, ours = jsonschema_accepts(mutated), fast_accepts(fast, mutated)
            if theirs != ours:
                disagreements.append(f"{'.'.join(map(str, path))} = {value!r}: "
                                     f"jsonschema {theirs}, generated {ours}")  # fmt: skip
    assert checked > 100
    assert not disagreements, "\n".join(disagreements[:20])


def test_a_refused_config_keeps_jsonschemas_words(tmp_path: Path) -> None:
    """The generated code gives the verdict; the message is still jsonschema's."""
    config = specgen.default_spec()
    config["process"]["user"]["uid"] = "root"
    raw = json.dumps(config).encode()
    with pytest.raises(validate.ConfigError) as caught:
        validate.validate_config(config, raw, bundle=str(tmp_path))
    assert str(caught.value).startswith("config.json: process.user.uid: ")


PROCESS_REF = "config-schema.json#/$defs/Process"


def process_files() -> list[tuple[str, dict[str, Any]]]:
    """The process.json files managers hand `exec --process`, and a config's process."""
    files = [("ocirt spec's process", specgen.default_spec()["process"])]
    for path in sorted(REFERENCE.glob("*-process.json")) if REFERENCE.is_dir() else ():
        files.append((path.name, json.loads(path.read_text())))
    return files


@pytest.mark.parametrize(("name", "process"), process_files(), ids=lambda v: str(v)[:30])
def test_process_verdicts_agree(fast_process: Any, name: str, process: dict) -> None:
    """exec --process: the generated check of a process.json against jsonschema's."""
    assert fast_accepts(fast_process, process) == jsonschema_accepts(process, PROCESS_REF) is True
    disagreements = []
    for path in leaf_paths(process):
        if not path:
            continue
        for value in REPLACEMENTS:
            mutated = replaced(process, path, value)
            theirs = jsonschema_accepts(mutated, PROCESS_REF)
            if theirs != fast_accepts(fast_process, mutated):
                disagreements.append(f"{'.'.join(map(str, path))} = {value!r}: jsonschema {theirs}")
    assert not disagreements, "\n".join(disagreements[:20])


PATTERN_SAMPLES = (
    "", " ", "/", "/a", "a/", "MB:", "MB:x", "MB:x\n", "MB", "0KB", "2MB", "12GB", "1B", "10TB",
    "2MB\n", "1", "0", "0-3", " 0 - 3 , 5 ", "0,", ",", "1-", "-1", "1 2", "0-3,5-7", "\t",
    "1\u00a02", "RLIMIT_NOFILE", "RLIMIT_", "RLIMIT_nofile", "RLIMIT_NOFILE\n", "CAP_SYS_ADMIN",
    "CAP_", "CAP_1_A", "cap_x", "CAP_SYS_ADMIN ", "1.0.0", "1.0.2-dev", "1.3.0+build.1",
    "1.0.0-rc-1.x+b", "01.0.0", "1.0", "1.0.0-", "1.0.0+", "1.0.0-a..b", "1.0.0\n", "1.0.0-\u03b1",
    "٣", "1٣", "1.0.٣",
)  # fmt: skip


def test_pattern_tests_judge_as_their_patterns() -> None:
    """build_schema's plain tests stand for the schema's patterns (`re` costs ~6 ms):
    on every sample, each accepts exactly what the pattern, anchored at the end
    as the generated code anchors it ("$" as "\\Z"), accepts."""
    import re

    from ocirt._shim import build_schema

    namespace: dict[str, Any] = {}
    exec(build_schema.HEADER.split("SCHEMA_STAMP")[1].split("\n", 1)[1], namespace)
    for pattern, test in build_schema.PATTERN_TESTS.items():
        judge = eval(test, namespace)  # the build step's own text
        strict = re.compile(pattern.replace("$", r"\Z"))
        for sample in PATTERN_SAMPLES:
            assert bool(judge(sample)) == bool(strict.search(sample)), (pattern, sample)
