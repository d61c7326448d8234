"""JSON for the short commands, without importing ``json``.

``import json`` costs ~8 ms (it pulls in ``re``), as much as the whole
interpreter start-up; ``ocirt state``, ``start``, ``kill`` and ``delete`` must
stay within a few times crun's ~3 ms.  CPython's C accelerator ``_json``
(what ``json`` itself uses) is importable on its own: its scanner parses,
its string encoder quotes.  Output is byte-for-byte ``json.dumps``'s for the
types a state record holds (tests/test_fastjson.py checks that).

No ``from __future__ import annotations``: it is an import too, and the
annotations here evaluate fine at run time.
"""

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from types import ModuleType

_NOT_JSON_CONSTANTS = {"NaN", "Infinity", "-Infinity"}

# _json is a shared library (~0.3 ms to load): imported on first need, which
# `start` and `state` of the usual record (ocirt.state reads its marshal
# copy) never have.
_accelerator: "ModuleType | None" = None
_scan = None


def _c_json() -> "ModuleType":
    global _accelerator
    if _accelerator is None:
        import _json as accelerator

        _accelerator = accelerator
    return _accelerator


def preload() -> None:
    """Load _json now, for a process that will not import later (the init and
    exec's child: ocirt.process.common.seal_imports)."""
    _c_json()


class _ScannerContext:
    """The attributes _json.make_scanner reads (json.decoder.JSONDecoder's)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: dict = {}

    @staticmethod
    def parse_constant(name: str) -> float:
        return float(name.replace("Infinity", "inf"))


def loads(text: str | bytes) -> object:
    global _scan
    if _scan is None:
        _scan = _c_json().make_scanner(_ScannerContext())
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    start = len(text) - len(text.lstrip())
    try:
        value, end = _scan(text, start)
    except StopIteration as e:
        raise ValueError(f"invalid JSON at offset {e.value}") from None
    except SystemError:
        # The C scanner reports some errors through json.decoder, which we do
        # not import; it then fails without an exception of its own.
        raise ValueError("invalid JSON") from None
    if text[end:].strip():
        raise ValueError(f"extra data at offset {end}")
    return value


def quote(text: str) -> str:
    """json.dumps(TEXT): as is between quotes when nothing needs an escape."""
    # What encode_basestring_ascii leaves alone: printable ASCII but " and \.
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return f'"{text}"'
    return _c_json().encode_basestring_ascii(text)


def dumps(obj: object, indent: int | None = None, compact: bool = False) -> str:
    """json.dumps(obj, indent=indent), or with separators (",", ":") if COMPACT."""
    if indent is None and _accelerator is not None:
        # _json loaded anyway (create has parsed the config): its encoder, the
        # one json.dumps itself uses without indent, is ~4x faster on a record
        # (create writes four: ~0.35 ms of CPU).
        return "".join(_c_encoder(compact)(obj, 0))
    parts: list[str] = []
    _encode(obj, parts, indent, 0, ":" if compact else ": ", "," if compact else ", ")
    return "".join(parts)


_encoders: dict = {}


def _c_encoder(compact: bool) -> "Callable[[object, int], Sequence[str]]":
    """_json's encoder with json.dumps's arguments (ensure_ascii, allow_nan)."""
    encoder = _encoders.get(compact)
    if encoder is None:
        c = _c_json()
        colon, comma = (":", ",") if compact else (": ", ", ")
        # markers None: no check for cycles (the Python encoder has none either)
        encoder = c.make_encoder(
            None, _not_serializable, c.encode_basestring_ascii, None, colon, comma,
            False, False, True,
        )  # fmt: skip
        _encoders[compact] = encoder
    return encoder


def _not_serializable(obj: object) -> object:
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def _encode(
    obj: object, out: list[str], indent: int | None, level: int, colon: str, comma: str
) -> None:
    if isinstance(obj, str):
        out.append(quote(obj))
    elif obj is None:
        out.append("null")
    elif obj is True:
        out.append("true")
    elif obj is False:
        out.append("false")
    elif isinstance(obj, int):
        out.append(int.__repr__(obj))
    elif isinstance(obj, float):
        out.append(float.__repr__(obj))
    elif isinstance(obj, dict):
        _encode_items(
            [(quote(str(k)) + colon, v) for k, v in obj.items()],
            "{",
            "}",
            out,
            indent,
            level,
            colon,
            comma,
        )
    elif isinstance(obj, (list, tuple)):
        _encode_items([("", v) for v in obj], "[", "]", out, indent, level, colon, comma)
    else:
        _not_serializable(obj)


def _encode_items(
    items: list[tuple[str, object]],
    opener: str,
    closer: str,
    out: list[str],
    indent: int | None,
    level: int,
    colon: str,
    comma: str,
) -> None:
    if not items:
        out.append(opener + closer)
        return
    if indent is None:
        separator, inner, outer = comma, "", ""
    else:
        inner = "\n" + " " * (indent * (level + 1))
        outer = "\n" + " " * (indent * level)
        separator = ","
    out.append(opener)
    for i, (prefix, value) in enumerate(items):
        out.append((separator if i else "") + inner + prefix)
        _encode(value, out, indent, level + 1, colon, comma)
    out.append(outer + closer)
