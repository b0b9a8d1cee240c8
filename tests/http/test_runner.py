"""Tests of the runner itself: the case parser, exact-number JSON, JSON paths,
every operator (each also with a value that must fail), implicit checks, and
whole steps against a small local HTTP server that echoes what it received."""

import http.server
import json
import threading
import types

import pytest

import caseformat
import checks
import fhirjson
import harness
from caseformat import CaseFormatError
from checks import Response
from fhirjson import Number

# ----------------------------------------------------------------------
# Parser
# ----------------------------------------------------------------------

CASE = """\
# a comment before the first step
POST /fhir/Observation?x=${v}
Prefer: return=minimal
@repeat 3
# a comment in the head

{"resourceType": "Observation",
 "status": "final"}   \t
expect status 201
# a comment among expectations
  capture id = header Location ~ ([0-9a-f]{32})
---
RAW
@half-close
GET / HTTP/1.1\\r\\n
Host: x\\r\\n\\r\\n
---
# only a comment
---
corpus hl7-r4-examples/*.json
---
PUT /fhir/Observation/1
Content-Type:
@body-file a/b.json
@parallel 4
@no-implicit
"""


def test_parse_reads_every_part_of_a_step():
    post, raw, corpus, put = caseformat.parse(CASE)
    assert (post.kind, post.line, post.method, post.target) == ("http", 2, "POST", "/fhir/Observation?x=${v}")
    assert post.headers == [("Prefer", "return=minimal")]
    assert post.repeat == 3 and post.parallel == 0 and post.implicit
    assert post.body == '{"resourceType": "Observation",\n "status": "final"}'
    assert [(c.line, c.capture, c.text) for c in post.checks] == [
        (9, False, "status 201"),
        (11, True, "id = header Location ~ ([0-9a-f]{32})"),
    ]
    assert (raw.kind, raw.raw_mode, raw.body) == ("raw", "half-close", "GET / HTTP/1.1\\r\\n\nHost: x\\r\\n\\r\\n")
    assert (corpus.kind, corpus.target) == ("corpus", "hl7-r4-examples/*.json")
    assert corpus.describe() == "corpus hl7-r4-examples/*.json"
    assert put.headers == [("Content-Type", "")]
    assert (put.body_file, put.parallel, put.implicit, put.body) == ("a/b.json", 4, False, None)


def test_parse_body_shorthands():
    file_step, size_step = caseformat.parse("POST /x\n\n@file:a.json\n---\nPOST /x\n\nbody-size 12\n")
    assert (file_step.body_file, file_step.body) == ("a.json", None)
    assert (size_step.body_size, size_step.body) == (12, None)


@pytest.mark.parametrize(
    "text, message",
    [
        ("GET /x\n@repeat 0\n", "line 2: bad option '@repeat 0'"),
        ("GET /x\n@parallel 257\n", "line 2: bad option"),
        ("GET /x\n@frobnicate\n", "line 2: unknown option '@frobnicate'"),
        ("GET /x\n@close\n", "line 2: unknown option '@close'"),
        ("GET /x\nnot a header\n", "line 2: expected 'Header: value'"),
        ("GET /x\nA: 1\na: 2\n", "line 3: header 'a' is set twice"),
        ("GET /x\nexpect status 200\nstatus 200\n", "line 3: after the body only"),
        ("get /x\n", "line 1: bad method 'get'"),
        ("\n\nGET\n", "line 3: expected a request line"),
        ("corpus x/*.json\nA: b\n", "line 2: corpus blocks take no headers"),
    ],
)
def test_parse_errors_name_the_line(text, message):
    with pytest.raises(CaseFormatError, match=message):
        caseformat.parse(text)


def test_substitute():
    assert caseformat.substitute("${a}/${b}${a}$ {a} ${c", {"a": "1", "b": "x"}) == "1/x1$ {a} ${c"
    with pytest.raises(caseformat.UndefinedVariable, match=r"undefined variable \$\{nope\}"):
        caseformat.substitute("x ${nope}", {})


def test_unescape_raw():
    text = "GET / HTTP/1.1\\r\\n\nX: \\x41\\x4a\\t\\\\\\q\\xZZ\\"
    assert caseformat.unescape_raw(text) == b"GET / HTTP/1.1\r\nX: AJ\t\\\\q\\xZZ\\"


# ----------------------------------------------------------------------
# Exact-number JSON and paths
# ----------------------------------------------------------------------


def test_numbers_keep_their_text_and_differ_from_strings():
    doc = fhirjson.loads(b'{"a": 1.00, "b": 1E-22, "c": "1.00", "d": 12345678901234567890.123456789}')
    assert doc["a"] == Number("1.00") and doc["a"] != Number("1.0")
    assert doc["a"] != "1.00" and doc["c"] != Number("1.00")
    assert [fhirjson.type_name(doc[k]) for k in "abc"] == ["number", "number", "string"]
    assert fhirjson.render(doc["d"]) == "12345678901234567890.123456789"
    assert fhirjson.dumps(doc) == '{"a":1.00,"b":1E-22,"c":"1.00","d":12345678901234567890.123456789}'
    assert fhirjson.loads('{"x": [1.0]}') != fhirjson.loads('{"x": [1.00]}')


@pytest.mark.parametrize(
    "text",
    [b'{"a": 1, "a": 2}', b"[NaN]", b"[Infinity]", b"{} x", b"[01]", b'["\xff"]', b'["\\ud800"]', b'["a\\u0000"]', b""],
)
def test_loads_rejects(text):
    with pytest.raises(fhirjson.JSONError, match="^invalid JSON: "):
        fhirjson.loads(text)


DOC = fhirjson.loads(
    """{"entry": [{"id": "a", "n": 1}, {"id": "b", "n": 2}, {"id": "c", "n": 3}],
        "link": [{"relation": "self", "url": "s"}, {"relation": "next", "url": "n"}],
        "name": "Zoë", "obj": {"length": "own member", "k": [true, null]}, "empty": []}"""
)


@pytest.mark.parametrize(
    "path, rendered",
    [
        ("entry[0].id", ["a"]),
        (".entry[-1].id", ["c"]),
        ("entry[3]", []),
        ("entry[-4]", []),
        ("entry[*].n", ["1", "2", "3"]),
        ("link[relation=next].url", ["n"]),
        ("link[relation=none]", []),
        ("entry[n=2].id", ["b"]),
        ("entry.length", ["3"]),
        ("name.length", ["4"]),  # UTF-8 bytes
        ("obj.length", ["own member"]),
        ("obj.k", ["[true,null]"]),
        ("obj", ['{"length":"own member","k":[true,null]}']),
        ("empty[*]", []),
        ("missing.length", []),
        ("name[0]", []),
        ("", [fhirjson.dumps(DOC)]),
    ],
)
def test_paths(path, rendered):
    nodes, _ = fhirjson.evaluate(DOC, path)
    assert [fhirjson.render(n) for n in nodes] == rendered


@pytest.mark.parametrize(
    "path, message", [("entry[0", "missing ]"), ("entry[x]", r"bad index \[x\]"), ("a[]", "bad index")]
)
def test_path_errors(path, message):
    with pytest.raises(fhirjson.PathError, match=message):
        fhirjson.evaluate(DOC, path)


# ----------------------------------------------------------------------
# Expectations: each operator with a value that holds and one that does not
# ----------------------------------------------------------------------

RESPONSE = Response(
    status=201,
    headers=[
        ("Content-Type", "application/fhir+json; charset=utf-8"),
        ("ETag", 'W/"1"'),
        ("X-Empty", ""),
        ("etag", "second"),
    ],
    body='{"id": "abc", "v": 1.00, "s": "1.00", "n": 5, "t": true, "z": null, "e": "", '
    '"list": [{"k": 2}, {"k": 3}], "text": "quote \\" back \\\\ é"}'.encode(),
)

EXPECTATIONS = [
    ("status 201", True), ("status 200", False), ("status 200|201", True), ("status 400|415", False),
    ("header etag = W/\"1\"", True), ("header ETag = second", False), ("header ETag != W/\"2\"", True),
    ("header ETag != W/\"1\"", False), ("header X-Empty = \"\"", True), ("header X-Empty = x", False),
    ("header Content-Type ~ ^application/fhir\\+json; ?charset=(utf|UTF)-8$", True),
    ("header Content-Type ~ ^application/json", False), ("header Content-Type !~ xml", True),
    ("header Content-Type !~ fhir", False), ("header Content-Type contains charset", True),
    ("header Content-Type contains xml", False), ("header Content-Type !contains xml", True),
    ("header Content-Type !contains fhir", False), ("header ETag exists", True), ("header Location exists", False),
    ("header Location absent", True), ("header ETag absent", False), ("header Location = x", False),
    ("header Location != x", False),
    ("json id = abc", True), ("json id = ab", False), ("json id != abd", True), ("json id != abc", False),
    ("json v = 1.00", True), ("json v = 1.0", False), ("json v = 1", False), ("json s = 1.00", True),
    ("json v raw 1.00", True), ("json v raw 1.0", False), ("json s raw 1.00", False),
    ("json v type number", True), ("json s type number", False), ("json s type string", True),
    ("json t type boolean", True), ("json z type null", True), ("json list type array", True),
    ("json list[0] type object", True), ("json list type object", False), ("json t = true", True),
    ("json z = null", True), ("json e = \"\"", True), ("json e = x", False),
    ("json id ~ ^[a-c]{3}$", True), ("json id ~ ^[a-c]{2}$", False), ("json id !~ ^x", True), ("json id !~ ^a", False),
    ("json text contains quote \" back \\ é", True), ("json text contains quote \\\"", False),
    ("json text !contains xyz", True), ("json text !contains back", False),
    ("json n < 6", True), ("json n < 5", False), ("json n <= 5", True), ("json n <= 4.99", False),
    ("json n > 4", True), ("json n > 5", False), ("json n >= 5.0", True), ("json n >= 5.01", False),
    ("json v > 0.5", True), ("json id > 1", False), ("json n > abc", False), ("json list.length >= 2", True),
    ("json list.length > 2", False),
    ("json list[*].k >= 2", True), ("json list[*].k >= 3", False), ("json list[*].k exists", True),
    ("json nothing[*] exists", False), ("json list[*].nope exists", False), ("json list[*].nope absent", True),
    ("json list[-1].k = 3", True), ("json list[k=3].k = 3", True), ("json list[k=4] exists", False),
    ("json id exists", True), ("json nope exists", False), ("json nope absent", True), ("json id absent", False),
    ("json nope = x", False), ("json nope != x", False),
    ("body not-empty", True), ("body empty", False), ("body contains \"id\": \"abc\"", True),
    ("body contains \"id\":\"abc\"", False), ("body !contains xml", True), ("body !contains abc", False),
    ("body ~ \"v\" *: *1\\.00[^0-9]", True), ("body ~ \"v\" *: *1\\.0[^0-9]", False),
]


@pytest.mark.parametrize("expectation, holds", EXPECTATIONS)
def test_expectation(expectation, holds):
    problem = checks.check(expectation, False, RESPONSE, {})
    assert (problem is None) == holds, problem


@pytest.mark.parametrize(
    "expectation, message",
    [
        ("json v = 1.0", "expected json v = 1.0, got number 1.00"),
        ("json list[*].k = 2", "expected json list[*].k = 2, got (element 1) number 3"),
        ("json s type number", "expected json s type number, got string"),
        ("json nope exists", "expected json nope exists, got (absent)\n      response: 201, body: {"),
        ("header ETag = x", "expected header ETag = x, got 'W/\"1\"'"),
        ("status 200", "expected status 200, got 201\n      response: 201, body: {\"id\""),
        ("body empty", "expected body empty, got: {"),
        ("json id ~ (", "bad regex '('"),
        ("json id =~ x", "unknown operator '=~'"),
        ("json id[ = 1", "bad path 'id[': missing ]"),
        ("json id", "syntax: expect json PATH"),
        ("header ETag ~", "syntax: expect header NAME"),
        ("body ~", "syntax: expect body"),
        ("stats 200", "unknown expectation"),
    ],
)
def test_failure_messages(expectation, message):
    assert message in checks.check(expectation, False, RESPONSE, {})


def test_json_checks_on_a_body_that_is_not_json():
    problem = checks.check("json id exists", False, Response(status=200, body=b"<html>"), {})
    assert problem.startswith("response is not JSON: invalid JSON: ")


@pytest.mark.parametrize(
    "capture, value",
    [
        ("x = json id", "abc"),
        ("x = json v", "1.00"),
        ("x = json list", '[{"k":2},{"k":3}]'),
        ("x = json list[*].k", "2"),
        ("x = header ETag ~ \"([0-9]+)\"", "1"),
        ("x = header ETag ~ [0-9]", "1"),
        ("x = header Content-Type ~ ^[a-z]+", "application"),
        ("x = body", RESPONSE.body.decode()),
    ],
)
def test_capture(capture, value):
    variables = {}
    assert checks.check(capture, True, RESPONSE, variables) is None
    assert variables == {"x": value}


@pytest.mark.parametrize(
    "capture, message",
    [
        ("x = json nope", "nothing to capture: json nope is absent"),
        ("x = header Location", "nothing to capture: header Location is absent"),
        ("x = header ETag ~ ^[0-9]$", "'header ETag' does not match ~ ^[0-9]$"),
        ("x = status", "capture source must be"),
        ("x json id", "capture needs 'NAME = json PATH'"),
    ],
)
def test_capture_failures(capture, message):
    variables = {}
    assert message in checks.check(capture, True, RESPONSE, variables)
    assert variables == {}


OUTCOME = b'{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid"}]}'
FHIR_JSON = ("Content-Type", "application/fhir+json")
REQUEST_ID = ("X-Request-Id", "r1")
TEXT_PLAIN = ("Content-Type", "text/plain")
WARNING = OUTCOME.replace(b"error", b"warning")
NO_CODE = OUTCOME.replace(b'"invalid"', b'""')


@pytest.mark.parametrize(
    "method, path, response, problems",
    [
        ("GET", "/fhir/x", Response(200, [REQUEST_ID, FHIR_JSON], b"{}"), []),
        ("GET", "/fhir/x", Response(400, [REQUEST_ID, FHIR_JSON], OUTCOME), []),
        ("GET", "/healthz", Response(200, [REQUEST_ID], b"ok"), []),
        ("HEAD", "/fhir/x", Response(404, [REQUEST_ID]), []),
        ("GET", "/fhir/x", Response(200, [FHIR_JSON], b"{}"), ["carries X-Request-Id"]),
        ("GET", "/fhir/x", Response(200, [REQUEST_ID, TEXT_PLAIN], b"{}"), ["JSON Content-Type: got text/plain"]),
        ("GET", "/fhir/x", Response(200, [REQUEST_ID], b"{}"), ["JSON Content-Type: got (absent)"]),
        ("GET", "/fhir/x", Response(200, [REQUEST_ID, FHIR_JSON], b"{"), ["valid JSON"]),
        ("GET", "/fhir/x", Response(404, [REQUEST_ID]), ["an error (404) is an OperationOutcome"]),
        ("GET", "/other", Response(500, [REQUEST_ID], b"oops"), ["an error (500) is an OperationOutcome"]),
        ("GET", "/fhir/x", Response(400, [REQUEST_ID, FHIR_JSON], WARNING), ["an error (400)"]),
        ("GET", "/fhir/x", Response(400, [REQUEST_ID, FHIR_JSON], NO_CODE), ["an error (400)"]),
    ],
)
def test_implicit_checks(method, path, response, problems):
    found = checks.implicit_problems(method, path, response)
    assert len(found) == len(problems) and all(p in f for p, f in zip(problems, found)), found


@pytest.mark.parametrize(
    "sent, got, difference",
    [
        ('{"id": "1", "a": [1.0, "x"]}', '{"id": "2", "meta": {}, "a": [1.0, "x"]}', None),
        ('{"a": [1.0]}', '{"a": [1.00]}', "a[0]: sent number 1.0, got back number 1.00"),
        ('{"a": {"b": 1}}', '{"a": {"b": "1"}}', "a.b: sent number 1, got back string 1"),
        ('{"a": 1, "b": 2}', '{"a": 1}', "b: missing in response"),
        ('{"a": {}}', '{"a": {"c": 1}}', "a.c: added by the server"),
        ('{"a": [1]}', '{"a": [1, 1]}', "a: sent array [1], got back array [1,1]"),
    ],
)
def test_resource_difference(sent, got, difference):
    assert checks.resource_difference(fhirjson.loads(sent), fhirjson.loads(got)) == difference


def test_raw_reply_parsing():
    reply = harness.parse_raw_reply(b"HTTP/1.1 404 Not Found\r\nB:  2 \r\nC:\r\nno colon\r\n\r\nbody\r\n\r\nmore")
    assert (reply.status, reply.headers, reply.body) == (404, [("B", "2"), ("C", "")], b"body\r\n\r\nmore")
    assert harness.parse_raw_reply(b"HTTP/1.1 200 OK\r\nA: 1") == Response(status=200, headers=[("A", "1")])
    assert harness.parse_raw_reply(b"") == Response()


def test_generated_bodies():
    assert len(harness.padded_body(1048577)) == 1048577
    assert json.loads(harness.padded_body(100))["pad"] == "x" * 61
    assert harness.padded_body(5) == b"xxxxx"
    assert harness.nested_body(3).endswith(b'"note":[[[]]]}')


# ----------------------------------------------------------------------
# Whole steps against a local server that echoes each request as JSON
# ----------------------------------------------------------------------


class Echo(http.server.BaseHTTPRequestHandler):
    """Answers every request with {"method", "target", "headers", "body"}."""

    def _answer(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        reply = json.dumps({
            "method": self.command,
            "target": self.path,
            "headers": {name.lower(): value for name, value in self.headers.items()},
            "body": body.decode(),
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Request-Id", "echo")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, *args):
        pass


class EchoServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # a client that hangs up early (RAW @close) is no error here


@pytest.fixture(scope="module")
def echo():
    """A stand-in for Server: base, port, alive() and exit_description()."""
    httpd = EchoServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    port = httpd.server_address[1]
    yield types.SimpleNamespace(port=port, base=f"http://127.0.0.1:{port}", alive=lambda: True, exit_description=str,
                                admin_token="test-token")
    httpd.shutdown()
    httpd.server_close()


def run(echo, text, keep_going=False):
    settings = harness.Settings(binary=None, test_data=None, keep_going=keep_going)
    return harness.CaseRun("t.case", echo, settings).run(caseformat.parse(text))


def test_targets_and_headers_are_sent_as_written(echo):
    assert run(echo, """\
GET /a/../b?x=a|b&y=%zz&z=%7c&w=${port}
X-Custom: one two
expect json target = /a/../b?x=a|b&y=%zz&z=%7c&w=${port}
expect json headers.accept = */*
expect json headers.x-custom = one two
expect json headers.content-type absent
---
GET ${base}/abs?q=|
Accept:
expect json target = /abs?q=|
expect json headers.accept absent
""") == []


def test_bodies_get_a_default_content_type_and_vars(echo):
    assert run(echo, """\
POST /p
X-N: ${port}

{"n": "${port}"}
expect json method = POST
expect json headers.content-type = application/fhir+json
expect json body = {"n": "${port}"}
capture n = json headers.x-n
expect json headers.x-n = ${n}
---
PUT /p
Content-Type:

text
expect json headers.content-type absent
expect json body = text
---
POST /p
Content-Type: text/plain
@body-size 50
expect json headers.content-type = text/plain
expect json body.length = 50
""") == []


def test_repeat_counts_and_parallel_sends_every_request(echo):
    assert run(echo, """\
POST /r
@repeat 3

n${i}
expect json body ~ ^n[1-3]$
capture last = json body
---
GET /after?${last}
expect json target = /after?n3
---
GET /p
@parallel 5
expect status 200
""") == []


def test_raw_steps(echo):
    assert run(echo, """\
RAW
GET /raw HTTP/1.1\\r\\nHost: x\\r\\n
Connection: close\\r\\n\\r\\n
expect status 200
expect json target = /raw
expect header X-Request-Id = echo
---
RAW
@close
GET /closed HTTP/1.1\\r\\n\\r\\n
expect status 0
""") == []


def test_a_wrong_expectation_fails_the_step_and_ends_the_case(echo):
    (failure,) = run(echo, "GET /x\nexpect status 201\nexpect json target = /y\n---\nGET /never\nexpect status 599\n")
    assert failure.startswith(
        "FAIL t.case:1 (line 1) GET /x\n"
        "    line 2: expect status 201\n"
        "      expected status 201, got 200\n"
        '      response: 200, body: {"method": "GET", "target": "/x", '
    )
    assert failure.endswith("    line 3: expect json target = /y\n      expected json target = /y, got string /x")


def test_keep_going_runs_every_step_and_names_the_iteration(echo):
    case = "GET /x\nexpect status 201\n---\nPOST /y\n@repeat 2\n\nn${i}\nexpect json body = n1\n"
    failures = run(echo, case, keep_going=True)
    assert len(failures) == 2
    assert failures[1].startswith("FAIL t.case:2 (line 4) POST /y\n    (iteration 2 of 2)\n    line 8: expect json body")


def test_step_errors(echo):
    (failure,) = run(echo, "GET /${nope}\nexpect status 200\n")
    assert failure == "FAIL t.case:1 (line 1) GET /${nope}\n    undefined variable ${nope}"
    (failure,) = run(echo, "GET /x\nexpect json target = ${nope}\n")
    assert "line 2: expect json target = ${nope}: undefined variable ${nope}" in failure
    (failure,) = run(echo, "GET http://127.0.0.1:1/x\nexpect status 200\n")
    url = "http://127.0.0.1:1/x"
    assert failure.startswith(f"FAIL t.case:1 (line 1) GET {url}\n    GET {url}: transport error: ")
