"""JSON with exact numbers, and the JSON paths of expectations.

NUMBERS. FHIR decimals keep their text: 1.00 is not 1.0. loads() therefore
parses with ``json.loads(text, parse_float=Number, parse_int=Number)``: every
number becomes a Number, a str holding the exact token the server sent.
(Number is a str subclass rather than plain str so that ``type`` and ``raw``
can tell the number 1 from the string "1".) Every comparison of numbers is
on that text: ``expect json x = 1.00`` compares "1.00" with the token, and
trees are equal only when their numbers are written the same.

PATHS. ``a.b[0].c``, ``[-1]`` (last element), ``[*]`` (every element),
``[key=value]`` (the first element whose member key renders as value) and a
final ``length`` (size of an array or object, or a string's UTF-8 bytes,
unless the object has a member named length). A leading ``.`` is optional;
``""`` and ``.`` are the root.
"""

import json
import re


class Number(str):
    """A JSON number as its exact token text. Equal only to a Number with the same text."""

    __slots__ = ()

    def __eq__(self, other):
        return isinstance(other, Number) and str.__eq__(self, other)

    def __ne__(self, other):
        return not self == other

    __hash__ = str.__hash__

    def __repr__(self):
        return f"Number({str.__repr__(self)})"


class JSONError(ValueError):
    """Text that is not JSON; str() reads ``invalid JSON: <why>``."""


class PathError(ValueError):
    """A malformed JSON path."""


def _no_duplicates(pairs):
    obj = {}
    for key, value in pairs:
        if key in obj:
            raise JSONError(f"invalid JSON: duplicate object key '{key}'")
        obj[key] = value
    return obj


def _no_constant(name):
    raise JSONError(f"invalid JSON: {name} is not a JSON value")


_BAD_CHARACTER = re.compile("[\x00\ud800-\udfff]")


def _check_strings(value):
    """Rejects what jansson rejects after parsing: NUL and lone surrogates (from \\u escapes)."""
    if isinstance(value, dict):
        for key, member in value.items():
            _check_strings(key)
            _check_strings(member)
    elif isinstance(value, list):
        for element in value:
            _check_strings(element)
    elif isinstance(value, str) and _BAD_CHARACTER.search(value):
        raise JSONError(f"invalid JSON: string with NUL or a lone surrogate: {value!r}")


def loads(data):
    """Parses UTF-8 JSON text (bytes or str) strictly: any value at the top,
    no duplicate keys, no NaN/Infinity, no NUL or lone surrogates in strings,
    numbers as Number. Raises JSONError."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        value = json.loads(
            text,
            parse_float=Number,
            parse_int=Number,
            parse_constant=_no_constant,
            object_pairs_hook=_no_duplicates,
        )
    except JSONError:
        raise
    except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise JSONError(f"invalid JSON: {e}") from None
    _check_strings(value)
    return value


def type_name(value) -> str:
    """object, array, string, number, boolean or null."""
    if isinstance(value, Number):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "array" if isinstance(value, list) else "object"


def dumps(value) -> str:
    """Compact JSON, numbers as their exact token, non-ASCII unescaped."""
    if isinstance(value, Number):
        return str(value)
    if isinstance(value, list):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + dumps(v) for k, v in value.items()) + "}"
    return json.dumps(value, ensure_ascii=False)


def render(value) -> str:
    """The text a value is compared as: a string's value, a number's token,
    true/false/null, compact JSON for objects and arrays."""
    if isinstance(value, str):
        return str(value)
    return dumps(value)


def _segments(path: str) -> list:
    """A path as ("key", name, is_last) / ("all",) / ("match", key, value) / ("index", n)."""
    rest = path[1:] if path.startswith(".") else path
    segments = []
    while rest:
        if rest.startswith("["):
            end = rest.find("]")
            if end < 0:
                raise PathError(f"bad path '{path}': missing ]")
            selector, rest = rest[1:end], rest[end + 1 :]
            if selector == "*":
                segments.append(("all",))
            elif "=" in selector:
                key, _, value = selector.partition("=")
                segments.append(("match", key, value))
            elif re.fullmatch("-?[0-9]+", selector):
                segments.append(("index", int(selector)))
            else:
                raise PathError(f"bad path '{path}': bad index [{selector}]")
        else:
            key = re.match(r"[^.\[]*", rest).group()
            rest = rest[len(key) :]
            segments.append(("key", key, rest == ""))
        rest = rest.removeprefix(".")
    return segments


def evaluate(root, path: str) -> tuple:
    """(nodes, every): the values path selects from root, and whether [*]
    expanded an array (every node must then pass). Raises PathError."""
    nodes, every = [root], False
    for segment in _segments(path):
        selected = []
        for node in nodes:
            if segment[0] == "key":
                _, key, is_last = segment
                if isinstance(node, dict) and key in node:
                    selected.append(node[key])
                elif key == "length" and is_last and type_name(node) in ("array", "object", "string"):
                    size = len(node.encode("utf-8")) if isinstance(node, str) else len(node)
                    selected.append(Number(size))
            elif not isinstance(node, list):
                continue
            elif segment[0] == "all":
                every = True
                selected.extend(node)
            elif segment[0] == "match":
                _, key, value = segment
                hit = next((e for e in node if isinstance(e, dict) and key in e and render(e[key]) == value), None)
                if hit is not None:
                    selected.append(hit)
            else:
                index = segment[1] + len(node) if segment[1] < 0 else segment[1]
                if 0 <= index < len(node):
                    selected.append(node[index])
        nodes = selected
    return nodes, every
