"""Transport security against the real binary: HTTPS with libmicrohttpd's
own TLS (a certificate made here with the openssl command), the refusal
of a non-loopback address without TLS, and CORS for browser apps."""

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import requests

import harness

ORIGIN = "https://app.example.org"


@pytest.fixture(scope="module")
def tls_server(settings):
    if not shutil.which("openssl"):
        pytest.fail("the openssl command is needed (scripts/debian-packages.txt)", pytrace=False)
    root = Path(tempfile.mkdtemp(prefix="vitalog-tls-"))
    cert, key = root / "cert.pem", root / "key.pem"
    made = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                           "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out",
                           str(cert), "-days", "2", "-subj", "/CN=127.0.0.1", "-addext",
                           "subjectAltName=IP:127.0.0.1"], capture_output=True, timeout=60)
    assert made.returncode == 0, made.stderr
    (root / "data").mkdir()
    with harness.serving(settings.binary, root / "data",
                         ("--tls-cert", str(cert), "--tls-key", str(key), "--cors-origin", ORIGIN)) as server:
        server.https = f"https://127.0.0.1:{server.port}"
        server.cert = str(cert)
        yield server
    shutil.rmtree(root, ignore_errors=True)


def get(server, path, **headers):
    return requests.get(server.https + path, headers=headers, verify=server.cert, timeout=30)


def test_https_serves_with_the_certificate(tls_server):
    assert get(tls_server, "/healthz").status_code == 200
    r = get(tls_server, "/fhir/Patient", Authorization=f"Bearer {tls_server.admin_token}")
    assert r.status_code == 200 and r.json()["link"][0]["url"].startswith("https://")
    # curl with the certificate as its only trust anchor
    out = subprocess.run(["curl", "-sS", "--cacert", tls_server.cert, "-o", "/dev/null", "-w",
                          "%{http_code}", tls_server.https + "/fhir/metadata"],
                         capture_output=True, text=True, timeout=30)
    assert out.stdout == "200", out.stderr


def test_plain_http_on_the_tls_port_gets_no_answer(tls_server):
    with pytest.raises(requests.exceptions.RequestException):
        requests.get(f"http://127.0.0.1:{tls_server.port}/healthz", timeout=10)
    # an untrusted certificate is refused by a verifying client
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(tls_server.https + "/healthz", timeout=10)


def test_cors_preflight_and_answers(tls_server):
    pre = requests.options(tls_server.https + "/fhir/Patient", verify=tls_server.cert, timeout=30,
                           headers={"Origin": ORIGIN, "Access-Control-Request-Method": "GET",
                                    "Access-Control-Request-Headers": "authorization"})
    assert pre.status_code == 204
    assert pre.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "GET" in pre.headers["Access-Control-Allow-Methods"]
    assert "Authorization" in pre.headers["Access-Control-Allow-Headers"]
    r = get(tls_server, "/fhir/Patient", Origin=ORIGIN, Authorization=f"Bearer {tls_server.admin_token}")
    assert r.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Location" in r.headers["Access-Control-Expose-Headers"]
    # an origin that is not listed gets nothing a browser would accept
    bad = requests.options(tls_server.https + "/fhir/Patient", verify=tls_server.cert, timeout=30,
                           headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
    assert bad.status_code == 403 and "Access-Control-Allow-Origin" not in bad.headers
    r = get(tls_server, "/fhir/metadata", Origin="https://evil.example")
    assert r.status_code == 200 and "Access-Control-Allow-Origin" not in r.headers
    assert r.json()["rest"][0]["security"]["cors"] is True


def test_no_cors_headers_by_default(settings):
    root = Path(tempfile.mkdtemp(prefix="vitalog-nocors-"))
    server = harness.Server(settings.binary, root)
    try:
        server.wait_for_port()
        r = requests.get(server.base + "/fhir/metadata", headers={"Origin": ORIGIN}, timeout=30)
        assert r.status_code == 200 and "Access-Control-Allow-Origin" not in r.headers
        pre = requests.options(server.base + "/fhir/metadata", timeout=30,
                               headers={"Origin": ORIGIN, "Access-Control-Request-Method": "GET"})
        assert pre.status_code == 403
    finally:
        problem = server.stop()
        shutil.rmtree(root, ignore_errors=True)
    assert problem is None, problem


@pytest.mark.parametrize("args,code", [
    (("--listen", "0.0.0.0:0"), 2),
    (("--listen", "10.1.2.3:0"), 2),
    (("--tls-cert", "/nonexistent"), 2),
])
def test_refusals_before_the_data_directory(settings, args, code):
    root = Path(tempfile.mkdtemp(prefix="vitalog-refuse-"))
    try:
        p = subprocess.run([str(settings.binary), "serve", "--data", str(root / "data"), *args],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == code, p.stderr
        assert not (root / "data").exists()
    finally:
        shutil.rmtree(root, ignore_errors=True)
