"""Runs one case file against a real `vitalog serve`.

Per case (run_case_file):
  1. a fresh data directory DIR (tempfile.mkdtemp, under $TMPDIR or /tmp);
  2. `vitalog serve --data DIR --listen 127.0.0.1:0 --port-file DIR/port`,
     stdout and stderr to DIR/server.log; DIR/port is polled (10 s at most);
  3. the steps in order: the first failing HTTP or RAW step ends the case
     (unless keep_going); a failing corpus step does not; the case fails
     as soon as the server dies;
  4. SIGTERM: the server must exit with status 0 within 10 s;
  5. DIR is removed (unless kept). A failure report ends with the server log.

HTTP steps go through requests, one new connection per request, with a 10 s
timeout; RAW steps through a plain socket. Every exchange is logged at
DEBUG level on the logger "vitalog.http" (pytest --log-cli-level=DEBUG).
"""

import contextlib
import ctypes
import glob
import logging
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import requests
import urllib3.connectionpool
from requests.structures import CaseInsensitiveDict

import caseformat
import checks
import fhirjson
from checks import Response, excerpt

log = logging.getLogger("vitalog.http")

REQUEST_TIMEOUT = 10.0  # seconds, each HTTP request and RAW connect
RAW_READ_TIMEOUT = 3.0  # seconds a RAW step waits for a whole reply
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
LOG_TAIL = 16384  # bytes of server log in a failure report

# The case format sends request targets as written: `|`, `%zz` and `..`
# included. requests re-quotes a URL when it prepares it (so the prepared
# URL is replaced below) and urllib3 percent-encodes the target right
# before sending it (`|` -> `%7C`, `%zz` -> `%25zz`): turned off here, for
# this test process only. test_runner.py checks what arrives on the wire.
urllib3.connectionpool._encode_target = lambda target: target


@dataclass
class Settings:
    """How to run cases (from the pytest options, see conftest.py)."""

    binary: Path  # the vitalog binary
    test_data: Path  # tests/data: @file bodies and corpus globs
    keep_data: str = "never"  # "never", "failed" or "always"
    keep_going: bool = False  # run the remaining steps after a failing one


# ----------------------------------------------------------------------
# The server process
# ----------------------------------------------------------------------


class ServerError(Exception):
    """The server did not start."""


_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def _die_with_parent():
    """Runs in the child before exec: the kernel kills the server if pytest dies."""
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _describe_exit(returncode: int) -> str:
    if returncode >= 0:
        return f"exit status {returncode}"
    return f"killed by signal {-returncode} ({signal.Signals(-returncode).name})"


class Server:
    """One `vitalog serve` on an ephemeral loopback port, logging to DIR/server.log."""

    def __init__(self, binary: Path, data_dir: Path, extra: tuple = ()):
        """Starts the process (`extra`: more serve options); wait_for_port()
        tells when it listens."""
        self.log_path = data_dir / "server.log"
        self._port_file = data_dir / "port"
        self.port, self.base = 0, ""
        self._data_dir = data_dir
        self.admin_token = ""
        with open(self.log_path, "wb") as server_log:
            self.process = subprocess.Popen(
                [str(binary), "serve", "--data", str(data_dir), "--listen", "127.0.0.1:0",
                 "--port-file", str(self._port_file), *extra],
                stdin=subprocess.DEVNULL, stdout=server_log, stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )

    def wait_for_port(self) -> None:
        """Sets port and base once the port file holds a whole number (a
        newline after it, or the same text twice in a row); raises ServerError."""
        deadline = time.monotonic() + START_TIMEOUT
        last = None
        while time.monotonic() < deadline:
            text = self._port_file.read_text() if self._port_file.exists() else ""
            match = re.fullmatch(r"([0-9]+)(\s*)", text)
            if match and (match.group(2) or text == last) and 0 < int(match.group(1)) < 65536:
                self.port = int(match.group(1))
                self.base = f"http://127.0.0.1:{self.port}"
                # written before the server listens (vl_auth_bootstrap)
                self.admin_token = (self._data_dir / "admin.token").read_text().strip()
                return
            last = text
            if not self.alive():
                raise ServerError(f"server exited before writing its port file: {self.exit_description()}")
            time.sleep(0.02)
        raise ServerError(f"no port in {self._port_file} after {START_TIMEOUT:.0f} s")

    def alive(self) -> bool:
        return self.process.poll() is None

    def exit_description(self) -> str:
        return _describe_exit(self.process.returncode)

    def stop(self) -> str | None:
        """SIGTERM and wait; None when the server exited with status 0 in
        time, else what went wrong (a server that hangs is killed)."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                return f"server did not exit within {STOP_TIMEOUT:.0f} s of SIGTERM (killed)"
        if self.process.returncode != 0:
            return f"server did not exit cleanly after SIGTERM: {self.exit_description()}"
        return None

    def log_tail(self) -> str:
        try:
            data = self.log_path.read_bytes()
        except OSError:
            return "  (no server log)"
        title = f"server log (last {LOG_TAIL} of {len(data)} bytes)" if len(data) > LOG_TAIL else "server log"
        text = data[-LOG_TAIL:].decode("utf-8", "replace").rstrip("\n")
        return f"  --- {title} ---\n{text}\n  --- end of server log ---"


# ----------------------------------------------------------------------
# Exchanges
# ----------------------------------------------------------------------


@contextlib.contextmanager
def serving(binary: Path, data_dir: Path, extra: tuple = ()):
    """A started Server on data_dir (the test fails when it does not start);
    once the block ends it must stop with status 0 on SIGTERM."""
    import pytest  # only the pytest modules use this helper
    server = Server(binary, data_dir, extra)
    try:
        server.wait_for_port()
    except ServerError as e:
        pytest.fail(f"server did not start: {e}\n{server.log_tail()}", pytrace=False)
    yield server
    problem = server.stop()
    assert problem is None, problem


def http_exchange(method: str, url: str, headers: CaseInsensitiveDict, body: bytes | None) -> Response:
    """One request on a new connection, the URL's path and query sent as written."""
    request = requests.Request(method, url, headers=headers, data=body).prepare()
    request.url = url  # not requests' re-quoted form
    try:
        with requests.Session() as session:
            reply = session.send(request, timeout=REQUEST_TIMEOUT, allow_redirects=False)
    except requests.RequestException as e:
        return Response(error=str(e))
    raw = reply.raw.headers
    headers = [(name, value.strip(" \t")) for name in raw for value in raw.getlist(name)]
    return Response(status=reply.status_code, headers=headers, body=reply.content)


def _reply_complete(data: bytes) -> bool:
    """Whether data holds a whole response: headers and Content-Length bytes
    of body (without Content-Length, a reply ends when the peer closes)."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return False
    for line in data[:end].split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = re.match(rb"\s*([0-9]*)", line[15:]).group(1)
            return len(data) >= end + 4 + int(length or 0)
    return False


def parse_raw_reply(data: bytes) -> Response:
    """An HTTP/1.x reply read from a socket: status line, headers up to the
    first blank line, and everything after it as the body."""
    end = data.find(b"\r\n\r\n")
    head, body = (data[:end], data[end + 4 :]) if end >= 0 else (data, b"")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    status = re.match(r"HTTP/\S*\s+([0-9]+)", status_line)
    response = Response(status=int(status.group(1)) if status else 0, body=body)
    for line in lines:
        name, colon, value = line.partition(":")
        if colon:
            response.headers.append((name, value.strip(" \t")))
    return response


def raw_exchange(port: int, data: bytes, mode: str) -> Response:
    """Sends bytes on a new TCP connection. mode "close": close at once and
    read nothing; "half-close": shutdown(SHUT_WR), then read; "wait": read.
    Reading stops after one whole reply, when the peer closes, or after 3 s."""
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=REQUEST_TIMEOUT)
    except OSError as e:
        return Response(error=f"connect: {e}")
    received = bytearray()
    with sock:
        try:
            sock.sendall(data)
            if mode == "half-close":
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may close early: not an error by itself
        if mode == "close":
            return Response()
        deadline = time.monotonic() + RAW_READ_TIMEOUT
        while not _reply_complete(received) and time.monotonic() < deadline:
            sock.settimeout(deadline - time.monotonic())
            try:
                chunk = sock.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            received += chunk
    return parse_raw_reply(bytes(received))


def _log_exchange(request_line: str, size: int, response: Response) -> None:
    if log.isEnabledFor(logging.DEBUG):
        lines = [f"> {request_line} ({size} bytes)", f"< {response.status} {response.error}".rstrip()]
        lines += [f"< {name}: {value}" for name, value in response.headers]
        lines.append(f"< {excerpt(response.body, 1000)}")
        log.debug("\n".join(lines))


# ----------------------------------------------------------------------
# Steps
# ----------------------------------------------------------------------


def padded_body(size: int) -> bytes:
    """@body-size N: {"resourceType":"Observation","pad":"xx…"} of exactly N bytes (N x's if shorter)."""
    head, tail = b'{"resourceType":"Observation","pad":"', b'"}'
    if size < len(head) + len(tail):
        return b"x" * size
    return head + b"x" * (size - len(head) - len(tail)) + tail


def nested_body(depth: int) -> bytes:
    """@body-nested N: an Observation whose note holds N nested arrays."""
    head = b'{"resourceType":"Observation","status":"final","code":{"text":"x"},"note":'
    return head + b"[" * depth + b"]" * depth + b"}"


class StepError(Exception):
    """A step that cannot be sent (undefined variable, unreadable body file)."""


class CaseRun:
    """The steps of one case against one server; variables live across steps."""

    def __init__(self, name: str, server: Server, settings: Settings):
        self.name = name
        self.server = server
        self.settings = settings
        # every request carries the bootstrap admin token unless a step sets
        # its own Authorization header ("Authorization:" alone sends none);
        # RAW steps write ${auth} where they need it
        self.variables = {"base": server.base, "port": str(server.port),
                          "admin_token": server.admin_token,
                          "auth": f"Authorization: Bearer {server.admin_token}"}

    def run(self, steps: list) -> list:
        """Runs the steps; returns the failure reports (empty when all passed)."""
        failures = []
        for number, step in enumerate(steps, 1):
            where = f"{self.name}:{number} (line {step.line})"
            log.debug("%s %s", where, step.describe())
            problems = self._corpus(step) if step.kind == "corpus" else self._exchange(step)
            if problems:
                failures.append(f"FAIL {where} {step.describe()}\n" + "\n".join("    " + p for p in problems))
            if not self.server.alive():
                failures.append(f"FAIL {where}: the server died during this step: {self.server.exit_description()}")
                break
            if problems and step.kind != "corpus" and not self.settings.keep_going:
                break
        return failures

    def _substitute(self, text: str) -> str:
        try:
            return caseformat.substitute(text, self.variables)
        except caseformat.UndefinedVariable as e:
            raise StepError(str(e)) from None

    def _request(self, step) -> tuple:
        """(url, headers, body) of an HTTP step, variables substituted."""
        target = self._substitute(step.target)
        url = target if target.startswith("http://") else self.server.base + target
        if step.body is not None:
            body = self._substitute(step.body).encode("utf-8")
        elif step.body_file:
            path = self.settings.test_data / step.body_file
            try:
                body = path.read_bytes()
            except OSError as e:
                raise StepError(f"cannot read body file {path}: {e.strerror}") from None
        elif step.body_size is not None:
            body = padded_body(step.body_size)
        elif step.body_nested:
            body = nested_body(step.body_nested)
        else:
            body = None
        headers = CaseInsensitiveDict({"Accept": "*/*",  # what curl sends
                                       "Authorization": f"Bearer {self.server.admin_token}"})
        for name, value in step.headers:
            name, value = self._substitute(name), self._substitute(value)
            headers.pop(name, None)
            if value:  # "Name:" with no value: not sent at all
                headers[name] = value
        if body is not None and not any(name.lower() == "content-type" for name, _ in step.headers):
            headers["Content-Type"] = "application/fhir+json"
        return url, headers, body

    def _send(self, step) -> tuple:
        """Sends a step once (or @parallel N times at once, one thread each);
        returns (request line for messages, responses)."""
        if step.kind == "raw":
            data = caseformat.unescape_raw(self._substitute(step.body or ""))
            response = raw_exchange(self.server.port, data, step.raw_mode)
            _log_exchange("RAW (raw socket)", len(data), response)
            return "RAW", [response]
        url, headers, body = self._request(step)

        def send():
            response = http_exchange(step.method, url, headers, body)
            _log_exchange(f"{step.method} {url}", len(body or b""), response)
            return response

        if not step.parallel:
            return f"{step.method} {url}", [send()]
        barrier = threading.Barrier(step.parallel)  # all threads send together

        def send_together(_):
            barrier.wait()
            return send()

        with ThreadPoolExecutor(max_workers=step.parallel) as pool:
            return f"{step.method} {url}", list(pool.map(send_together, range(step.parallel)))

    def _exchange(self, step) -> list:
        """Runs an HTTP or RAW step: @repeat N in sequence with ${i} = 1..N,
        or @parallel N at once; every response must meet every check. Stops
        at the first response that does not; returns its problems."""
        total = step.parallel or step.repeat
        for iteration in range(1, (1 if step.parallel else step.repeat) + 1):
            self.variables["i"] = str(iteration)
            try:
                request_line, responses = self._send(step)
            except StepError as e:
                return [str(e)]
            for index, response in enumerate(responses, 1):
                if step.kind != "raw" and response.error:
                    return [f"{request_line}: transport error: {response.error}"]
                problems = []
                if step.implicit and step.kind != "raw":
                    path = request_line.split(" ", 1)[1].removeprefix(self.server.base)
                    problems += checks.implicit_problems(step.method, path, response)
                for check in step.checks:
                    problem = self._check(check, response)
                    if problem:
                        problems.append(problem)
                if problems:
                    if total > 1:
                        which = f"request {index}" if step.parallel else f"iteration {iteration}"
                        problems.insert(0, f"({which} of {total})")
                    return problems
        return []

    def _check(self, check, response: Response) -> str | None:
        try:
            text = self._substitute(check.text)
        except StepError as e:
            return f"line {check.line}: {check}: {e}"
        problem = checks.check(text, check.capture, response, self.variables)
        if problem:
            keyword = "capture" if check.capture else "expect"
            return f"line {check.line}: {keyword} {text}\n      {problem}"
        return None

    def _corpus(self, step) -> list:
        """A corpus step: every file of the glob round-trips (see _round_trip)."""
        pattern = self.settings.test_data / step.target
        files = sorted(glob.glob(str(pattern)))
        if not files:
            return [f"corpus {step.target}: no files match {pattern}"]
        failed = [f"    {Path(f).name}: {why}" for f in files if (why := self._round_trip(Path(f)))]
        print(f"  corpus {step.target}: {len(files) - len(failed)}/{len(files)} round-trip")
        if failed:
            return [f"corpus {step.target}: {len(failed)} of {len(files)} examples fail:", *failed]
        return []

    def _round_trip(self, file: Path) -> str | None:
        """POST the file unchanged to /fhir/{resourceType}: 201, Location
        {base}/fhir/{type}/{32 hex}/_history/1 with the body's id; GET it back:
        200, meta.versionId "1". Both bodies equal the file apart from id and
        meta. Returns None, or the first thing that went wrong."""
        base = self.server.base
        try:
            raw = file.read_bytes()
            sent = fhirjson.loads(raw)
        except OSError as e:
            return f"cannot read: {e.strerror}"
        except fhirjson.JSONError as e:
            return str(e)
        kind = sent.get("resourceType") if isinstance(sent, dict) else None
        if not isinstance(kind, str) or isinstance(kind, fhirjson.Number):
            return "no resourceType"
        headers = CaseInsensitiveDict({"Accept": "*/*", "Content-Type": "application/fhir+json",
                                       "Authorization": f"Bearer {self.server.admin_token}"})
        post = http_exchange("POST", f"{base}/fhir/{kind}", headers, raw)
        _log_exchange(f"POST {base}/fhir/{kind}", len(raw), post)
        if post.error:
            return f"POST: transport error: {post.error}"
        if post.status != 201:
            return f"POST: expected 201, got {post.status}: {excerpt(post.body, 500)}"
        location = post.header("Location") or ""
        match = re.fullmatch(rf"{re.escape(base)}/fhir/{re.escape(kind)}/([0-9a-f]{{32}})/_history/1", location)
        if not match:
            return f"POST: Location {location or '(absent)'} does not match {{base}}/fhir/{kind}/{{32 hex}}/_history/1"
        rid = match.group(1)
        try:
            created = post.json
        except fhirjson.JSONError as e:
            return f"POST: response is not JSON: {e}"
        if not isinstance(created, dict) or created.get("id") != rid:
            return f"POST: body id differs from Location id {rid}"
        difference = checks.resource_difference(sent, created)
        if difference:
            return f"POST response differs: {difference}"
        url = f"{base}/fhir/{kind}/{rid}"
        get = http_exchange("GET", url, CaseInsensitiveDict({"Accept": "*/*", "Authorization": headers["Authorization"]}), None)
        _log_exchange(f"GET {url}", 0, get)
        if get.error or get.status != 200:
            return f"GET {url}: expected 200, got {get.status} {get.error}".rstrip()
        try:
            read = get.json
        except fhirjson.JSONError as e:
            return f"GET: response is not JSON: {e}"
        meta = read.get("meta") if isinstance(read, dict) else None
        version = meta.get("versionId") if isinstance(meta, dict) else None
        if version != "1" or isinstance(version, fhirjson.Number):
            return f'GET: meta.versionId is {version or "(absent)"}, expected "1"'
        difference = checks.resource_difference(sent, read)
        return f"GET differs: {difference}" if difference else None


def run_case_file(path: Path, settings: Settings) -> str:
    """Runs one case file on a fresh server; returns "" when it passed,
    else the failure report (failed steps, then the server log)."""
    try:
        steps = caseformat.parse_file(path)
    except caseformat.CaseFormatError as e:
        return f"FAIL {path.name}: bad case file: {e}"
    data_dir = Path(tempfile.mkdtemp(prefix="vitalog-http-"))
    failures = []
    try:
        server = Server(settings.binary, data_dir)
        try:
            server.wait_for_port()
            log.debug("%s: server pid %d on port %d, data %s", path.name, server.process.pid, server.port, data_dir)
            failures += CaseRun(path.name, server, settings).run(steps)
        except ServerError as e:
            failures.append(f"FAIL {path.name}: server did not start: {e}")
        finally:
            problem = server.stop()
        if problem:
            failures.append(f"FAIL {path.name}: {problem}")
        if failures:
            failures.append(server.log_tail())
    finally:
        if settings.keep_data == "always" or (failures and settings.keep_data == "failed"):
            print(f"kept data dir {data_dir}")  # pytest shows it with the test's output
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
    return "\n".join(failures)
