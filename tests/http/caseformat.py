"""Parser for the case files tests/http/cases/*.case (format: README.md).

A case file is a sequence of steps separated by lines holding exactly ``---``.
A step is, in this order:

    # comment lines (also allowed among headers and expectations)
    METHOD /path?query            an HTTP step
    | RAW                         a raw TCP step, bytes written with escapes
    | corpus GLOB                 a corpus round trip of files under tests/data
    Name: value                   headers (HTTP steps only)
    @option                       options: @repeat N, @parallel N, @body-size N,
                                  @body-nested N, @body-file PATH, @no-implicit,
                                  @close, @half-close (RAW steps)
                                  a blank line ends the head (a RAW step's head
                                  ends at its first line not starting with @)
    body...                       every line up to the first expect/capture line
    expect ... | capture ...      checks, evaluated by checks.py

Line numbers are 1-based and name the line of the case file. Everything is
kept as written: ``${vars}`` are substituted when a step runs (substitute()),
and expectations are parsed when they are evaluated.
"""

import re
from dataclasses import dataclass, field
from pathlib import Path


class CaseFormatError(Exception):
    """A case file that does not follow the format; the message names the line."""


class UndefinedVariable(Exception):
    """A ``${name}`` with no value; the message is ``undefined variable ${name}``."""


def trim(text: str) -> str:
    """Strips spaces and tabs (and a trailing CR) as the format does: not other whitespace."""
    return text.lstrip(" \t").rstrip(" \t\r")


_VARIABLE = re.compile(r"\$\{([^}]*)\}")


def substitute(text: str, variables: dict) -> str:
    """Replaces every ``${name}`` in text; raises UndefinedVariable for an unknown name."""

    def value(match):
        try:
            return variables[match.group(1)]
        except KeyError:
            raise UndefinedVariable(f"undefined variable ${{{match.group(1)}}}") from None

    return _VARIABLE.sub(value, text)


_RAW_ESCAPES = {"r": b"\r", "n": b"\n", "t": b"\t", "\\": b"\\"}
_HEX = frozenset("0123456789abcdefABCDEF")


def unescape_raw(text: str) -> bytes:
    r"""The bytes a RAW step sends: \r \n \t \\ \xHH decoded, line breaks of
    the case file dropped (layout only), any other backslash kept as is."""
    out = bytearray()
    i = 0
    while i < len(text):
        c = text[i]
        nxt = text[i + 1] if i + 1 < len(text) else ""
        if c == "\n":
            i += 1
        elif c != "\\" or not nxt:
            out += c.encode()
            i += 1
        elif nxt in _RAW_ESCAPES:
            out += _RAW_ESCAPES[nxt]
            i += 2
        elif nxt == "x" and len(text) >= i + 4 and set(text[i + 2 : i + 4]) <= _HEX:
            out.append(int(text[i + 2 : i + 4], 16))
            i += 4
        else:
            out += (c + nxt).encode()
            i += 2
    return bytes(out)


@dataclass
class Check:
    """One ``expect TEXT`` or ``capture TEXT`` line (text without the keyword)."""

    text: str
    line: int
    capture: bool = False

    def __str__(self):
        return ("capture " if self.capture else "expect ") + self.text


@dataclass
class Step:
    """One step of a case. kind is "http", "raw" or "corpus"."""

    kind: str
    line: int
    method: str = ""  # HTTP method, or "RAW"
    target: str = ""  # HTTP: path and query (or an absolute URL); corpus: the glob
    headers: list = field(default_factory=list)  # (name, value); value "" = do not send
    body: str | None = None  # inline body text
    body_file: str | None = None  # @file:PATH / @body-file PATH, under tests/data
    body_size: int | None = None  # @body-size N
    body_nested: int | None = None  # @body-nested N
    repeat: int = 1  # @repeat N: in sequence, ${i} = 1..N
    parallel: int = 0  # @parallel N: at once (0 = not parallel)
    implicit: bool = True  # implicit checks (off with @no-implicit)
    raw_mode: str = "wait"  # RAW: "wait" (read a reply), "half-close", "close"
    checks: list = field(default_factory=list)

    def describe(self) -> str:
        """The step as failure messages name it: ``GET /path`` or ``corpus GLOB``."""
        return f"corpus {self.target}" if self.kind == "corpus" else f"{self.method} {self.target}".rstrip()


def parse_file(path: Path) -> list:
    """The steps of a case file; raises CaseFormatError."""
    return parse(Path(path).read_text(encoding="utf-8"))


def parse(text: str) -> list:
    """The steps of a case file's text; raises CaseFormatError."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the text's final newline ends the last line
    numbered = [(n, line.removesuffix("\r")) for n, line in enumerate(lines, 1)]
    steps, block = [], []
    for number, line in numbered + [(None, "---")]:
        if line == "---":
            step = _parse_block(block)
            if step:
                steps.append(step)
            block = []
        else:
            block.append((number, line))
    return steps


def _is_check_line(line: str) -> bool:
    return line.startswith("expect ") or line.startswith("capture ")


def _parse_block(block: list) -> Step | None:
    """One step from its (line number, line) pairs; None for a block of comments only."""
    i = 0
    while i < len(block) and (block[i][1].startswith("#") or not trim(block[i][1])):
        i += 1
    if i == len(block):
        return None
    number, request = block[i][0], trim(block[i][1])
    step = _parse_request_line(number, request)
    i += 1

    # head: headers and @options, up to a blank line or an expectation
    while i < len(block):
        number, line = block[i]
        if step.kind == "raw" and not line.startswith("@"):
            break
        if not trim(line):
            i += 1
            break
        if _is_check_line(line):
            break
        i += 1
        if line.startswith("#"):
            continue
        if trim(line).startswith("@"):
            _apply_option(step, number, trim(line))
        else:
            _add_header(step, number, trim(line))

    # body: everything up to the first expect/capture line
    body_lines = []
    while i < len(block) and not _is_check_line(block[i][1]):
        body_lines.append(block[i][1])
        i += 1
    body = "\n".join(body_lines).rstrip("\n \r\t")
    if body.startswith("@file:") and "\n" not in body:
        step.body_file = trim(body[len("@file:") :])
    elif body.startswith("body-size ") and "\n" not in body:
        step.body_size = _count(number, body, body[len("body-size ") :], minimum=0)
    elif body:
        step.body = body

    for number, line in block[i:]:
        line = trim(line)
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        if keyword not in ("expect", "capture"):
            raise CaseFormatError(
                f"line {number}: after the body only 'expect ...' and 'capture ...' lines may follow, got '{line}'"
            )
        step.checks.append(Check(trim(rest), number, capture=keyword == "capture"))
    return step


def _parse_request_line(number: int, request: str) -> Step:
    if request.startswith("corpus "):
        return Step("corpus", number, target=trim(request[len("corpus ") :]))
    if request == "RAW":
        return Step("raw", number, method="RAW")
    method, space, target = request.partition(" ")
    if not space:
        raise CaseFormatError(f"line {number}: expected a request line 'METHOD /path', got '{request}'")
    if not re.fullmatch("[A-Z]+", method):
        raise CaseFormatError(f"line {number}: bad method '{method}'")
    return Step("http", number, method=method, target=trim(target))


def _count(number: int, option: str, text: str, minimum: int, maximum: int | None = None) -> int:
    """The integer argument of an option, within [minimum, maximum]."""
    text = trim(text)
    if re.fullmatch("[0-9]+", text) and int(text) >= minimum and (maximum is None or int(text) <= maximum):
        return int(text)
    raise CaseFormatError(f"line {number}: bad option '{option}'")


def _apply_option(step: Step, number: int, option: str) -> None:
    name, _, arg = option.partition(" ")
    if name == "@repeat" and arg:
        step.repeat = _count(number, option, arg, minimum=1)
    elif name == "@parallel" and arg:
        step.parallel = _count(number, option, arg, minimum=1, maximum=256)
    elif name == "@body-size" and arg:
        step.body_size = _count(number, option, arg, minimum=0)
    elif name == "@body-nested" and arg:
        step.body_nested = _count(number, option, arg, minimum=1)
    elif name == "@body-file" and trim(arg):
        step.body_file = trim(arg)
    elif option == "@half-close" and step.kind == "raw":
        step.raw_mode = "half-close"
    elif option == "@close" and step.kind == "raw":
        step.raw_mode = "close"
    elif option == "@no-implicit":
        step.implicit = False
    else:
        raise CaseFormatError(f"line {number}: unknown option '{option}'")


def _add_header(step: Step, number: int, line: str) -> None:
    if step.kind == "corpus":
        raise CaseFormatError(f"line {number}: corpus blocks take no headers")
    name, colon, value = line.partition(":")
    if not colon:
        raise CaseFormatError(f"line {number}: expected 'Header: value', '@option' or a blank line, got '{line}'")
    if any(name.lower() == seen.lower() for seen, _ in step.headers):
        raise CaseFormatError(f"line {number}: header '{name}' is set twice")
    step.headers.append((name, trim(value)))
