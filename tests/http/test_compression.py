"""Response compression against the real binary (docs/operations.md,
"Compression"): gzip when Accept-Encoding allows it, decoded here with
Python's gzip module and compared with the identity answer (a search page,
the streamed ledger export); bodies under the minimum sent as they are;
HEAD and 304 never compressed; `vitalog serve --compress-min`."""

import gzip
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import requests

import harness


def observation(i: int) -> dict:
    return {"resourceType": "Observation", "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                      "code": "vital-signs"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]},
            "subject": {"reference": "Patient/gz"},
            "effectiveDateTime": f"2024-05-{1 + i % 28:02d}T10:{i % 60:02d}:00Z",
            "valueQuantity": {"value": 60 + i % 40, "unit": "/min", "system": "http://unitsofmeasure.org",
                              "code": "/min"}}


def fill(server) -> str:
    """A patient and 30 heart rates (a search page of several KB); returns
    the path of the first heart rate (about 600 bytes)."""
    first = ""
    assert put(server, "/fhir/Patient/gz", {"resourceType": "Patient", "id": "gz"}).status_code in (200, 201)
    for i in range(30):
        r = requests.post(server.base + "/fhir/Observation", data=json.dumps(observation(i)),
                          headers={**auth(server), "Content-Type": "application/fhir+json"}, timeout=60)
        assert r.status_code == 201, r.text[:300]
        first = first or "/fhir/" + r.headers["Location"].split("/fhir/")[1].split("/_history")[0]
    return first


@pytest.fixture(scope="module")
def srv(settings):
    root = Path(tempfile.mkdtemp(prefix="vitalog-gzip-"))
    with harness.serving(settings.binary, root) as server:
        server.observation = fill(server)
        yield server
    shutil.rmtree(root, ignore_errors=True)


def auth(server) -> dict:
    return {"Authorization": f"Bearer {server.admin_token}", "Accept": "application/fhir+json"}


def put(server, path, body):
    return requests.put(server.base + path, data=json.dumps(body),
                        headers={**auth(server), "Content-Type": "application/fhir+json"}, timeout=60)


def raw_get(server, path: str, encoding: str | None, method: str = "GET", **headers):
    """The answer and its body exactly as sent (requests decodes nothing
    here); `encoding`: the Accept-Encoding to send, None for "identity"."""
    h = {**auth(server), "Accept-Encoding": encoding or "identity", **headers}
    r = requests.request(method, server.base + path, headers=h, stream=True, timeout=60)
    body = r.raw.read(decode_content=False)
    r.close()
    return r, body


def without_bundle_identity(text: bytes) -> dict:
    """A search Bundle without what is new on every page: its own id and
    lastUpdated, and its links' cursors (they name the ledger's size, which
    each audited read grows)."""
    bundle = json.loads(text)
    assert bundle["resourceType"] == "Bundle"
    bundle.pop("id")
    bundle.pop("meta")
    for link in bundle.get("link", []):
        link["url"] = re.sub(r"_cursor=[^&]*", "_cursor=", link["url"])
    return bundle


SEARCH = "/fhir/Observation?subject=Patient/gz&_count=50"


def test_search_page_gzip_decodes_to_the_identity_answer(srv):
    plain, plain_body = raw_get(srv, SEARCH, None)
    zipped, zipped_body = raw_get(srv, SEARCH, "gzip")
    assert plain.status_code == zipped.status_code == 200
    assert "Content-Encoding" not in plain.headers
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert plain.headers["Vary"] == zipped.headers["Vary"] == "Accept-Encoding"
    assert zipped.headers["Content-Type"] == plain.headers["Content-Type"]
    assert int(zipped.headers["Content-Length"]) == len(zipped_body)
    assert zipped_body[:2] == b"\x1f\x8b" and len(zipped_body) < len(plain_body) // 3
    decoded = gzip.decompress(zipped_body)
    assert len(decoded) == len(plain_body)
    assert without_bundle_identity(decoded) == without_bundle_identity(plain_body)
    assert len(without_bundle_identity(decoded)["entry"]) == 30


@pytest.mark.parametrize("accept, coded", [
    ("gzip", True), ("x-gzip", True), ("*", True), ("br, gzip;q=0.4", True),
    ("gzip;q=0", False), ("*;q=0", False), ("identity", False), ("br", False),
    ("gzip;q=0.3, identity;q=0.8", False), ("", False),
])
def test_accept_encoding_is_honoured(srv, accept, coded):
    r, body = raw_get(srv, SEARCH, None, **{"Accept-Encoding": accept})
    assert r.status_code == 200
    assert r.headers.get("Content-Encoding") == ("gzip" if coded else None)
    assert (body[:2] == b"\x1f\x8b") == coded
    assert r.headers["Vary"] == "Accept-Encoding"


def test_small_bodies_are_not_compressed(srv):
    for path in ("/fhir/Patient/gz", srv.observation):
        r, body = raw_get(srv, path, "gzip")
        assert r.status_code == 200 and len(body) < 1024
        assert "Content-Encoding" not in r.headers and "Vary" not in r.headers
        json.loads(body)


def test_head_is_not_compressed(srv):
    plain, plain_body = raw_get(srv, SEARCH, None)
    head, body = raw_get(srv, SEARCH, "gzip", method="HEAD")
    assert head.status_code == 200 and body == b""
    assert "Content-Encoding" not in head.headers
    assert head.headers["Vary"] == "Accept-Encoding"
    # the identity length (the Bundle's id and time have fixed widths)
    assert int(head.headers["Content-Length"]) == len(plain_body)


def test_not_modified_has_no_body_and_no_coding(srv):
    first, _ = raw_get(srv, "/fhir/Patient/gz", None)
    r, body = raw_get(srv, "/fhir/Patient/gz", "gzip", **{"If-None-Match": first.headers["ETag"]})
    assert r.status_code == 304 and body == b""
    assert "Content-Encoding" not in r.headers and "Content-Type" not in r.headers
    assert r.headers.get("Content-Length", "0") == "0"  # libmicrohttpd 0.9.75 sends 0
    assert r.headers["ETag"] == first.headers["ETag"]
    assert r.headers["Last-Modified"] == first.headers["Last-Modified"]
    assert r.headers["Vary"] == "Accept-Encoding"


def test_streamed_export_is_compressed_on_the_fly(srv):
    plain, plain_body = raw_get(srv, "/ledger/export", None)
    zipped, zipped_body = raw_get(srv, "/ledger/export", "gzip")
    assert plain.status_code == zipped.status_code == 200
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert zipped.headers["Transfer-Encoding"] == "chunked"
    assert gzip.decompress(zipped_body) == plain_body
    assert len(plain_body.splitlines()) >= 31  # an entry per write and a checkpoint


def test_compress_min_option(settings):
    root = Path(tempfile.mkdtemp(prefix="vitalog-gzip-min-"))
    try:
        (root / "low").mkdir()
        with harness.serving(settings.binary, root / "low", ("--compress-min", "100")) as server:
            path = fill(server)
            plain, plain_body = raw_get(server, path, None)
            r, body = raw_get(server, path, "gzip")  # ~600 bytes, over 100
            assert 100 < len(plain_body) < 1024
            assert r.headers["Content-Encoding"] == "gzip" and r.headers["Vary"] == "Accept-Encoding"
            assert gzip.decompress(body) == plain_body
        (root / "off").mkdir()
        with harness.serving(settings.binary, root / "off", ("--compress-min", "0")) as server:
            fill(server)
            for path in (SEARCH, "/ledger/export"):
                r, body = raw_get(server, path, "gzip")
                assert r.status_code == 200
                assert "Content-Encoding" not in r.headers and "Vary" not in r.headers
                assert body[:2] != b"\x1f\x8b"
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize("value", ["-1", "abc", "", "2147483648000"])
def test_compress_min_bad_values_exit_2(settings, value, tmp_path):
    p = subprocess.run([str(settings.binary), "serve", "--data", str(tmp_path / "d"), "--listen",
                        "127.0.0.1:0", "--compress-min", value], capture_output=True, text=True, timeout=30)
    assert p.returncode == 2, p.stderr
    assert not (tmp_path / "d").exists()


def test_help_documents_compress_min(settings):
    p = subprocess.run([str(settings.binary), "serve", "--help"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and "--compress-min BYTES" in p.stdout
