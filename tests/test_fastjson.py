"""ocirt._fastjson must read and write exactly what the json module does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_isolated

from ocirt import _fastjson

CONFIGS = sorted(Path("/work/shared/reference/configs").glob("*.json")) or sorted(
    (Path(__file__).resolve().parents[2] / "shared" / "reference" / "configs").glob("*.json")
)
SAMPLES = [
    {},
    [],
    {"a": [1, 2.5, -3, True, False, None], "b": {"c": 'é\u2028"\\\n\t'}},
    {"big": 2**64 - 1, "neg": -(2**63), "f": 1e-7, "nested": [[{"x": []}]]},
    "\U0001f600 emoji and \x00 nul",
    # quote()'s own path (printable ASCII) and its edges: DEL and controls escape
    {"del": "\x7f", "us": "\x1f", "": "", "ascii": " ~!#$%&'()*+,-./:;<=>?@[]^_`{|}"},
]


@pytest.mark.parametrize("value", SAMPLES)
def test_dumps_matches_json(value: object) -> None:
    assert _fastjson.dumps(value) == json.dumps(value)
    assert _fastjson.dumps(value, indent=2) == json.dumps(value, indent=2)
    assert _fastjson.dumps(value, compact=True) == json.dumps(value, separators=(",", ":"))
    assert _fastjson.loads(json.dumps(value)) == value


@pytest.mark.parametrize("value", SAMPLES)
def test_both_encoders_match_json(value: object, monkeypatch: pytest.MonkeyPatch) -> None:
    """dumps without indent takes _json's encoder once _json is loaded, its own
    before: both give json.dumps's text."""
    for accelerator in (None, _fastjson._c_json()):
        monkeypatch.setattr(_fastjson, "_accelerator", accelerator)
        assert _fastjson.dumps(value) == json.dumps(value)
        assert _fastjson.dumps(value, compact=True) == json.dumps(value, separators=(",", ":"))
    with pytest.raises(TypeError, match="Object of type set is not JSON serializable"):
        _fastjson.dumps({"a": {1}})


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_real_configs_round_trip(path: Path) -> None:
    raw = path.read_text()
    assert _fastjson.loads(raw) == json.loads(raw)
    assert _fastjson.dumps(json.loads(raw), indent=4) == json.dumps(json.loads(raw), indent=4)


@pytest.mark.parametrize("bad", ["", "{", "[1,]", "{} x", "nul", '{"a" 1}'])
def test_bad_json_raises_value_error(bad: str) -> None:
    with pytest.raises(ValueError):
        _fastjson.loads(bad)


def test_short_commands_do_not_import_heavy_modules() -> None:
    """state/start/kill/delete must stay fast: none of these may be imported."""
    repo = str(Path(__file__).resolve().parents[1])
    code = (
        f"import sys; sys.path.insert(0, {repo!r});"
        "sys.argv = ['ocirt', '--root', '/nonexistent-ocirt-root', 'state', 'x'];"
        "import ocirt.cli, ocirt.cli.state, ocirt.cli.kill, ocirt.cli.delete, ocirt.cli.start;"
        "ocirt.cli.main(sys.argv[1:]);"
        "heavy = {'json', 're', 'socket', 'jsonschema', 'pyroute2', 'ptrace', 'dataclasses',"
        " 'typing', 'enum', 'subprocess'} & set(sys.modules);"
        "print(sorted(heavy))"
    )
    out = run_isolated(code)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
