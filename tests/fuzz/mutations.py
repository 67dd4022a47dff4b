"""Hypothesis strategies that damage a valid file the ways real files get damaged.

Byte edits (flip, insert a hostile token, delete, truncate) model corruption and wrong
encodings; line edits (drop, duplicate, swap) model ragged or concatenated files; JSON
field edits (drop, set to a hostile value) model files from another tool or schema. A case
is a seed file plus a short list of edits, so hypothesis shrinks a failure to the fewest.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

# Tokens that broke parsers in the wild or in issue 12: NUL, invalid UTF-8, a BOM, quotes and
# separators, JSON escapes of a lone surrogate and of NUL, deep nesting, numbers past int64
# and past 4300 digits, a field over csv's 131,072-character limit, odd line breaks.
HOSTILE_TOKENS: tuple[bytes, ...] = (
    b"\x00", b"\xff", b"\xc3", b"\xef\xbb\xbf", b'"', b"'", b"\t", b"\n", b"\r", b"\r\n", b"\\",
    b",", b"{", b"}", b"[", b"]", b":", b"@@", b"|", b"\\ud800", b"\\u0000", b"\xed\xa0\x80",
    b"[" * 2000, b"9" * 25, b"9" * 5000, b"-1", b"1e400", b"NaN", b"null", b"true", b" ",
    "\u2028".encode(), "\u3000".encode(), b"x" * 140_000, b"PersonX", b"none",
)

HOSTILE_JSON: tuple[Any, ...] = (
    None, True, 0, -1, 2**64, 10**30, 1.5, float("nan"), "", " ", "\u0000", "\x1f", "\ud800", "x" * 10_000,
    [], [""], ["", " "], [[]], {}, {"a": 1}, [1, 2], ["ok", 3], "ok", "train", "test",
)


def _json_values() -> st.SearchStrategy[Any]:
    scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
    nested = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                          | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=6)
    return st.sampled_from(HOSTILE_JSON) | nested


def _byte_edit() -> st.SearchStrategy[tuple]:
    pos = st.integers(min_value=0, max_value=2**31)
    return st.one_of(
        st.tuples(st.just("flip"), pos, st.integers(0, 255)),
        st.tuples(st.just("insert"), pos, st.sampled_from(HOSTILE_TOKENS)),
        st.tuples(st.just("delete"), pos, st.integers(1, 64)),
        st.tuples(st.just("truncate"), pos),
        st.tuples(st.just("drop_line"), pos),
        st.tuples(st.just("dup_line"), pos),
        st.tuples(st.just("swap_lines"), pos, pos),
    )


def _json_edit() -> st.SearchStrategy[tuple]:
    pos = st.integers(min_value=0, max_value=2**31)
    return st.one_of(
        st.tuples(st.just("set_field"), pos, pos, _json_values()),
        st.tuples(st.just("drop_field"), pos, pos),
        st.tuples(st.just("add_field"), pos, st.text(max_size=8), _json_values()),
        st.tuples(st.just("deep"), pos, pos, st.integers(50, 100_000)),
    )


def byte_edits(max_edits: int = 3) -> st.SearchStrategy[list[tuple]]:
    return st.lists(_byte_edit(), min_size=1, max_size=max_edits)


def jsonl_edits(max_edits: int = 3) -> st.SearchStrategy[list[tuple]]:
    """Field edits and byte edits mixed: a JSONL file damaged in content or in form."""
    return st.lists(_json_edit() | _byte_edit(), min_size=1, max_size=max_edits)


def _apply_bytes(data: bytes, edit: tuple) -> bytes:
    kind, pos = edit[0], edit[1]
    if kind in ("drop_line", "dup_line", "swap_lines"):
        lines = data.split(b"\n")
        i = pos % len(lines)
        if kind == "drop_line":
            del lines[i]
        elif kind == "dup_line":
            lines.insert(i, lines[i])
        else:
            j = edit[2] % len(lines)
            lines[i], lines[j] = lines[j], lines[i]
        return b"\n".join(lines)
    at = pos % (len(data) + 1)
    if kind == "flip":
        return data[:at] + bytes([edit[2]]) + data[at + 1 :] if at < len(data) else data
    if kind == "insert":
        return data[:at] + edit[2] + data[at:]
    if kind == "delete":
        return data[:at] + data[at + edit[2] :]
    if kind == "truncate":
        return data[:at]
    raise AssertionError(kind)


def _apply_json(data: bytes, edit: tuple) -> bytes:
    lines = data.split(b"\n")
    i = edit[1] % len(lines)
    try:
        obj = json.loads(lines[i])
    except (ValueError, RecursionError):
        return data  # an earlier edit already broke this line
    if not isinstance(obj, dict) or not obj:
        return data
    keys = sorted(obj)
    if edit[0] == "set_field":
        obj[keys[edit[2] % len(keys)]] = edit[3]
    elif edit[0] == "drop_field":
        del obj[keys[edit[2] % len(keys)]]
    elif edit[0] == "add_field":
        obj[edit[2]] = edit[3]
    elif edit[0] == "deep":  # a field nested deeper than any recursion limit
        key = keys[edit[2] % len(keys)]
        text = json.dumps({k: v for k, v in obj.items() if k != key})
        deep = "[" * edit[3] + "]" * edit[3]
        lines[i] = (text[:-1] + (", " if len(obj) > 1 else "") + f'"{key}": {deep}}}').encode()
        return b"\n".join(lines)
    lines[i] = json.dumps(obj).encode("ascii")  # (\u escapes carry lone surrogates and NUL)
    return b"\n".join(lines)


def apply(data: bytes, edits: list[tuple]) -> bytes:
    """``data`` with every edit applied in order."""
    for edit in edits:
        data = _apply_json(data, edit) if edit[0] in ("set_field", "drop_field", "add_field", "deep") \
            else _apply_bytes(data, edit)
    return data
