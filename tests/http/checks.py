"""Expectations, captures and implicit checks against one response.

    expect status 201 | 200|201
    expect header NAME OP VALUE       OP: = != ~ !~ contains !contains
    expect header NAME exists|absent
    expect json PATH OP VALUE         OP: as for headers, and < <= > >= raw type
    expect json PATH exists|absent
    expect body empty|not-empty|contains TEXT|!contains TEXT|~ REGEX
    capture NAME = json PATH [~ REGEX] | header NAME [~ REGEX] | body

Values compare as text (numbers by their exact token, see fhirjson);
``= ""`` means the empty string; ``~`` is a regex search (Python re);
``< <= > >=`` compare as floating-point numbers and fail on text that is not
a number; ``raw`` is ``=`` that also requires a JSON number. A json check
whose path selects several nodes ([*]) must hold for each, and for at
least one. check() returns None when a check holds, otherwise the message.
"""

import functools
import re
from dataclasses import dataclass, field

import fhirjson
from caseformat import trim
from fhirjson import Number


@dataclass
class Response:
    """A response as the checks see it. status is 0 when nothing came back
    (RAW); error is a transport error ("" when the exchange worked)."""

    status: int = 0
    headers: list = field(default_factory=list)  # (name, value) in the order received
    body: bytes = b""
    error: str = ""

    def header(self, name: str) -> str | None:
        """The first header of that name (ASCII case-insensitive), or None."""
        return next((v for n, v in self.headers if n.lower() == name.lower()), None)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    @functools.cached_property
    def json(self):
        """The body parsed by fhirjson.loads (raises fhirjson.JSONError)."""
        return fhirjson.loads(self.body)


def excerpt(data, limit: int) -> str:
    """At most limit bytes of data on one line: control characters escaped,
    the full size appended when cut."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    text = raw[:limit].decode("utf-8", "replace")
    text = text.replace("\n", "\\n").replace("\r", "\\r")
    text = re.sub("[\x00-\x1f]", lambda m: f"\\x{ord(m.group()):02x}", text)
    return text + (f"... ({len(raw)} bytes)" if len(raw) > limit else "")


def _response_excerpt(response: Response) -> str:
    return f"\n      response: {response.status}, body: {excerpt(response.body, 600)}"


class _BadCheck(Exception):
    """A check that cannot be evaluated (bad regex, unknown operator)."""


def _search(pattern: str, text: str):
    try:
        return re.search(pattern, text)
    except re.error as e:
        raise _BadCheck(f"bad regex '{pattern}': {e}") from None


_FLOAT = re.compile(r"\s*[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf(?:inity)?|nan)", re.I)


def _as_float(text: str) -> float | None:
    """text as a number the way C's strtod() reads a whole string, else None."""
    return float(text) if _FLOAT.fullmatch(text) else None


def compare(op: str, actual: str | None, expected: str) -> bool:
    """Whether actual (None when absent) meets ``OP expected``."""
    if op == "exists":
        return actual is not None
    if op == "absent":
        return actual is None
    if actual is None:
        return False
    if op in ("=", "raw"):
        return actual == ("" if expected == '""' else expected)
    if op == "!=":
        return actual != expected
    if op == "~":
        return _search(expected, actual) is not None
    if op == "!~":
        return _search(expected, actual) is None
    if op == "contains":
        return expected in actual
    if op == "!contains":
        return expected not in actual
    if op in ("<", "<=", ">", ">="):
        a, b = _as_float(actual), _as_float(expected)
        if a is None or b is None:
            return False
        return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
    raise _BadCheck(f"unknown operator '{op}'")


def _split(text: str) -> tuple | None:
    """SUBJECT OP [VALUE] (SUBJECT without spaces; VALUE the trimmed rest), or None."""
    subject, space, rest = text.partition(" ")
    if not space:
        return None
    op, _, value = trim(rest).partition(" ")
    value = trim(value)
    if not value and op not in ("exists", "absent", "=", "raw", "!="):
        return None
    return subject, op, value


def check(text: str, capture: bool, response: Response, variables: dict) -> str | None:
    """Evaluates one expectation or capture (text after the keyword, variables
    substituted). A capture stores its value in variables."""
    try:
        if capture:
            return _capture(text, response, variables)
        if text.startswith("status "):
            return _status(trim(text[len("status ") :]), response)
        if text.startswith("header "):
            return _header(trim(text[len("header ") :]), response)
        if text.startswith("json "):
            return _json(trim(text[len("json ") :]), response)
        if text.startswith("body"):
            return _body(trim(text[len("body") :]), response)
        return "unknown expectation (status|header|json|body ...)"
    except _BadCheck as e:
        return str(e)


def _status(want: str, response: Response) -> str | None:
    if str(response.status) in (trim(alt) for alt in want.split("|")):
        return None
    return f"expected status {want}, got {response.status}" + _response_excerpt(response)


def _header(text: str, response: Response) -> str | None:
    parts = _split(text)
    if not parts:
        return "syntax: expect header NAME (=|!=|~|!~|contains|!contains) VALUE | exists | absent"
    name, op, value = parts
    actual = response.header(name)
    if compare(op, actual, value):
        return None
    got = "(absent)" if actual is None else f"'{actual}'"
    return f"expected header {name} {op}{' ' + value if value else ''}, got {got}"


def _json(text: str, response: Response) -> str | None:
    parts = _split(text)
    if not parts:
        return "syntax: expect json PATH (=|!=|~|!~|contains|!contains|<|<=|>|>=|raw|type) VALUE | exists | absent"
    path, op, value = parts
    try:
        nodes, every = fhirjson.evaluate(response.json, path)
    except fhirjson.JSONError as e:
        return f"response is not JSON: {e}" + _response_excerpt(response)
    except fhirjson.PathError as e:
        return str(e)
    if op in ("exists", "absent") and bool(nodes) == (op == "exists"):
        return None
    if op in ("exists", "absent") or not nodes:
        got = "present" if nodes else "(absent)"
        return f"expected json {path} {op}{' ' + value if value else ''}, got {got}" + _response_excerpt(response)
    for index, node in enumerate(nodes):
        if op == "type":
            ok, actual = fhirjson.type_name(node) == value, None
        else:
            actual = fhirjson.render(node)
            ok = (op != "raw" or isinstance(node, Number)) and compare(op, actual, value)
        if not ok:
            element = f"(element {index}) " if every else ""
            shown = "" if actual is None else " " + excerpt(actual, 300)
            return f"expected json {path} {op} {value}, got {element}{fhirjson.type_name(node)}{shown}"
    return None


def _body(text: str, response: Response) -> str | None:
    body = response.text
    if text == "empty":
        ok = not response.body
    elif text == "not-empty":
        ok = bool(response.body)
    elif text.startswith("contains "):
        ok = trim(text[len("contains ") :]) in body
    elif text.startswith("!contains "):
        ok = trim(text[len("!contains ") :]) not in body
    elif text.startswith("~ "):
        ok = _search(trim(text[len("~ ") :]), body) is not None
    else:
        return "syntax: expect body empty | not-empty | contains TEXT | !contains TEXT | ~ REGEX"
    return None if ok else f"expected body {text}, got: {excerpt(response.body, 800)}"


def _capture(text: str, response: Response, variables: dict) -> str | None:
    name, equals, source = text.partition(" = ")
    if not equals:
        return "capture needs 'NAME = json PATH' or 'NAME = header NAME'"
    source, tilde, regex = trim(source).partition(" ~ ")
    if source.startswith("json "):
        try:
            nodes, _ = fhirjson.evaluate(response.json, trim(source[len("json ") :]))
        except fhirjson.JSONError as e:
            return f"response is not JSON: {e}" + _response_excerpt(response)
        except fhirjson.PathError as e:
            return str(e) + _response_excerpt(response)
        value = fhirjson.render(nodes[0]) if nodes else None
    elif source.startswith("header "):
        value = response.header(trim(source[len("header ") :]))
    elif source == "body":
        value = response.text
    else:
        return "capture source must be 'json PATH', 'header NAME' or 'body'"
    if value is None:
        return f"nothing to capture: {source} is absent" + _response_excerpt(response)
    if tilde:
        match = _search(trim(regex), value)
        if not match:
            return f"'{source}' does not match ~ {trim(regex)}"
        value = match.group(1) if match.re.groups and match.group(1) is not None else match.group(0)
    variables[trim(name)] = value
    return None


def _is_error_outcome(response: Response) -> bool:
    """An OperationOutcome whose issue[0] has severity error|fatal and a code."""
    try:
        outcome = response.json
    except fhirjson.JSONError:
        return False

    def string(obj, key):
        value = obj.get(key) if isinstance(obj, dict) else None
        return value if isinstance(value, str) and not isinstance(value, Number) else None

    issues = outcome.get("issue") if isinstance(outcome, dict) else None
    issue = issues[0] if isinstance(issues, list) and issues else None
    return (
        string(outcome, "resourceType") == "OperationOutcome"
        and string(issue, "severity") in ("error", "fatal")
        and bool(string(issue, "code"))
    )


def implicit_problems(method: str, path: str, response: Response) -> list:
    """The implicit checks of an HTTP step (path: the request's path and query):
    - every response carries X-Request-Id;
    - a non-empty body under /fhir has a JSON Content-Type and is JSON;
    - a status >= 400 (not for HEAD) with a body, or under /fhir, is an
      OperationOutcome with issue[0].severity error|fatal and issue[0].code."""
    problems = []
    if response.header("X-Request-Id") is None:
        problems.append("(implicit) every response carries X-Request-Id: header absent")
    fhir = path.startswith("/fhir")
    if fhir and response.body:
        content_type = response.header("Content-Type")
        if not content_type or not content_type.startswith(("application/fhir+json", "application/json")):
            problems.append(f"(implicit) a FHIR body has a JSON Content-Type: got {content_type or '(absent)'}")
        try:
            response.json
        except fhirjson.JSONError as e:
            problems.append(f"(implicit) a FHIR body is valid JSON: {e}\n      body: {excerpt(response.body, 400)}")
    if response.status >= 400 and method != "HEAD" and (fhir or response.body) and not _is_error_outcome(response):
        problems.append(
            f"(implicit) an error ({response.status}) is an OperationOutcome with issue[0].severity error"
            f" and issue[0].code\n      body: {excerpt(response.body, 400)}"
        )
    return problems


def first_difference(sent, got, path: str = "") -> str | None:
    """The first difference between two JSON trees (numbers by exact text), or None."""
    if sent == got:
        return None
    if isinstance(sent, dict) and isinstance(got, dict):
        for key, value in sent.items():
            where = f"{path}.{key}" if path else key
            if key not in got:
                return f"{where}: missing in response"
            difference = first_difference(value, got[key], where)
            if difference:
                return difference
        added = next(key for key in got if key not in sent)
        return f"{path}.{added}: added by the server" if path else f"{added}: added by the server"
    if isinstance(sent, list) and isinstance(got, list) and len(sent) == len(got):
        for index, (a, b) in enumerate(zip(sent, got)):
            difference = first_difference(a, b, f"{path}[{index}]")
            if difference:
                return difference
    return (
        f"{path or '(root)'}: sent {fhirjson.type_name(sent)} {excerpt(fhirjson.render(sent), 120)},"
        f" got back {fhirjson.type_name(got)} {excerpt(fhirjson.render(got), 120)}"
    )


def resource_difference(sent, got) -> str | None:
    """first_difference() of two resources apart from their id and meta."""

    def without_id_and_meta(resource):
        if not isinstance(resource, dict):
            return resource
        return {k: v for k, v in resource.items() if k not in ("id", "meta")}

    return first_difference(without_id_and_meta(sent), without_id_and_meta(got))
