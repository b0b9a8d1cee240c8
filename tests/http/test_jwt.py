"""JWT bearer tokens over HTTP against the real binary: a key pair and a
JWKS made here with the openssl command, RS256 tokens signed by it, the
claims mapped onto roles, SMART scopes narrowing, and
/.well-known/smart-configuration."""

import base64
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from requests.structures import CaseInsensitiveDict

import harness

ISS = "https://idp.example.org"
AUD = "https://fhir.example.org/fhir"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def jwt_server(settings):
    if not shutil.which("openssl"):
        pytest.fail("the openssl command is needed (scripts/debian-packages.txt)", pytrace=False)
    root = Path(tempfile.mkdtemp(prefix="vitalog-jwt-"))
    key = root / "idp.pem"
    assert subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                           "-out", str(key)], capture_output=True, timeout=60).returncode == 0
    modulus = subprocess.run(["openssl", "rsa", "-in", str(key), "-noout", "-modulus"],
                             capture_output=True, text=True, timeout=60).stdout.strip().split("=", 1)[1]
    jwks = {"keys": [{"kty": "RSA", "kid": "k1", "use": "sig", "alg": "RS256",
                      "n": b64url(bytes.fromhex(modulus)), "e": b64url((65537).to_bytes(3, "big"))}]}
    (root / "jwks.json").write_text(json.dumps(jwks))
    (root / "data").mkdir()
    with harness.serving(settings.binary, root / "data",
                         ("--jwks", str(root / "jwks.json"), "--jwt-issuer", ISS, "--jwt-audience", AUD,
                          "--smart-authorize-url", ISS + "/authorize", "--smart-token-url", ISS + "/token")) as server:
        server.key = key
        yield server
    shutil.rmtree(root, ignore_errors=True)


def token(server, claims: dict, alg="RS256", kid="k1") -> str:
    head = b64url(json.dumps({"alg": alg, "kid": kid, "typ": "JWT"}).encode())
    body = b64url(json.dumps(claims).encode())
    signing = f"{head}.{body}".encode()
    if alg == "none":
        return f"{head}.{body}."
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(server.key)], input=signing,
                         capture_output=True, timeout=60).stdout
    return f"{head}.{body}.{b64url(sig)}"


def claims(**more):
    now = int(time.time())
    c = {"iss": ISS, "aud": AUD, "sub": "u1", "iat": now, "exp": now + 300}
    c.update(more)
    return c


def call(server, method, path, tok, body=None):
    h = CaseInsensitiveDict({"Accept": "application/fhir+json", "Authorization": f"Bearer {tok}"})
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/fhir+json"
    r = harness.http_exchange(method, server.base + path, h, data)
    assert not r.error, r.error
    return r


@pytest.fixture(scope="module")
def data(jwt_server):
    admin = jwt_server.admin_token
    for p in ("j1", "j2"):
        assert call(jwt_server, "PUT", f"/fhir/Patient/{p}", admin,
                    {"resourceType": "Patient", "id": p}).status == 201
    return True


def test_a_patients_jwt_reaches_their_compartment(jwt_server, data):
    tok = token(jwt_server, claims(fhirUser=f"{AUD}/Patient/j1", scope="openid fhirUser patient/*.rs"))
    assert call(jwt_server, "GET", "/fhir/Patient/j1", tok).status == 200
    assert call(jwt_server, "GET", "/fhir/Patient/j2", tok).status == 404
    # the scopes allow reads only
    r = call(jwt_server, "PUT", "/fhir/Patient/j1", tok, {"resourceType": "Patient", "id": "j1"})
    assert r.status == 403
    assert 'error="insufficient_scope"' in (r.header("WWW-Authenticate") or "")


@pytest.mark.parametrize("what,make", [
    ("alg none", lambda s: token(s, claims(fhirUser="Patient/j1", scope="patient/*.rs"), alg="none")),
    ("unknown kid", lambda s: token(s, claims(fhirUser="Patient/j1", scope="patient/*.rs"), kid="k9")),
    ("expired", lambda s: token(s, claims(fhirUser="Patient/j1", exp=int(time.time()) - 3600))),
    ("not yet valid", lambda s: token(s, claims(fhirUser="Patient/j1", nbf=int(time.time()) + 3600))),
    ("wrong issuer", lambda s: token(s, claims(fhirUser="Patient/j1", iss="https://evil.example"))),
    ("wrong audience", lambda s: token(s, claims(fhirUser="Patient/j1", aud="https://other.example"))),
    ("no fhirUser", lambda s: token(s, claims(scope="system/*.rs"))),
])
def test_bad_jwts_are_401(jwt_server, data, what, make):
    r = call(jwt_server, "GET", "/fhir/Patient/j1", make(jwt_server))
    assert r.status == 401, what
    assert (r.header("WWW-Authenticate") or "").startswith('Bearer realm="vitalog", error="invalid_token"')


def test_smart_configuration_and_capability_statement(jwt_server):
    r = harness.http_exchange("GET", jwt_server.base + "/.well-known/smart-configuration",
                              CaseInsensitiveDict({"Accept": "application/json"}), None)
    assert r.status == 200
    doc = json.loads(r.body)
    assert doc["issuer"] == ISS and doc["token_endpoint"] == ISS + "/token"
    assert "permission-v2" in doc["capabilities"] and "patient/*.rs" in doc["scopes_supported"]
    cs = json.loads(harness.http_exchange("GET", jwt_server.base + "/fhir/metadata",
                                          CaseInsensitiveDict({"Accept": "application/fhir+json"}), None).body)
    sec = cs["rest"][0]["security"]
    assert sec["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
    uris = {e["url"]: e["valueUri"] for e in sec["extension"][0]["extension"]}
    assert uris == {"authorize": ISS + "/authorize", "token": ISS + "/token"}


def test_no_smart_configuration_without_an_identity_provider(settings):
    root = Path(tempfile.mkdtemp(prefix="vitalog-nosmart-"))
    server = harness.Server(settings.binary, root)
    try:
        server.wait_for_port()
        r = harness.http_exchange("GET", server.base + "/.well-known/smart-configuration",
                                  CaseInsensitiveDict({"Accept": "*/*"}), None)
        assert r.status == 404
        # and a JWT is refused
        r = harness.http_exchange("GET", server.base + "/fhir/Patient",
                                  CaseInsensitiveDict({"Authorization": "Bearer a.b.c"}), None)
        assert r.status == 401
    finally:
        problem = server.stop()
        shutil.rmtree(root, ignore_errors=True)
    assert problem is None, problem


def test_a_granular_scope_narrows_the_data(jwt_server, data):
    admin = jwt_server.admin_token
    cat = "http://terminology.hl7.org/CodeSystem/observation-category"
    ids = {}
    for c in ("vital-signs", "laboratory"):
        body = {"resourceType": "Observation", "status": "final",
                "category": [{"coding": [{"system": cat, "code": c}]}],
                "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4" if c == "vital-signs" else "2339-0"}]},
                "subject": {"reference": "Patient/j1"}, "effectiveDateTime": "2024-05-06T10:00:00Z",
                "valueQuantity": {"value": 70, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}}
        r = call(jwt_server, "POST", "/fhir/Observation", admin, body)
        assert r.status == 201, r.body
        ids[c] = json.loads(r.body)["id"]
    tok = token(jwt_server, claims(fhirUser="Patient/j1",
                                   scope=f"patient/Observation.rs?category={cat}|vital-signs"))
    got = {e["resource"]["id"] for e in json.loads(call(jwt_server, "GET", "/fhir/Observation", tok).body).get("entry", [])}
    assert ids["vital-signs"] in got and ids["laboratory"] not in got
    assert call(jwt_server, "GET", f"/fhir/Observation/{ids['vital-signs']}", tok).status == 200
    assert call(jwt_server, "GET", f"/fhir/Observation/{ids['laboratory']}", tok).status == 404
    # the patient itself is not covered by an Observation scope
    assert call(jwt_server, "GET", "/fhir/Patient/j1", tok).status == 403


def test_type_scopes_hold_beyond_the_url_type(jwt_server, data):
    """A token whose SMART scopes name Observation only reads no other type
    through what a request reads beyond its URL's type: _include,
    _revinclude, chains, $everything."""
    admin = jwt_server.admin_token
    body = {"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "subject": {"reference": "Patient/j1"}, "effectiveDateTime": "2024-05-07T10:00:00Z",
            "valueQuantity": {"value": 71, "unit": "/min", "system": "http://unitsofmeasure.org",
                              "code": "/min"}}
    r = call(jwt_server, "POST", "/fhir/Observation", admin, body)
    assert r.status == 201, r.body
    obs_only = token(jwt_server, claims(fhirUser="Patient/j1", scope="patient/Observation.rs"))
    both = token(jwt_server, claims(fhirUser="Patient/j1",
                                    scope="patient/Observation.rs patient/Patient.rs"))
    q = "/fhir/Observation?patient=Patient/j1&_include=Observation:subject"
    for tok, patient_shown in ((obs_only, False), (both, True)):
        r = call(jwt_server, "GET", q, tok)
        assert r.status == 200, r.body
        types = {e["resource"]["resourceType"] for e in json.loads(r.body).get("entry", [])}
        assert "Observation" in types
        assert ("Patient" in types) == patient_shown, types
    # a Patient search with _revinclude needs Patient: refused for obs_only;
    # with both, the Observations come along
    assert call(jwt_server, "GET", "/fhir/Patient?_revinclude=Observation:subject", obs_only).status == 403
    r = call(jwt_server, "GET", "/fhir/Patient?_id=j1&_revinclude=Observation:subject", both)
    assert {e["resource"]["resourceType"] for e in json.loads(r.body)["entry"]} == {"Patient", "Observation"}
    # a Patient scope alone: $everything holds the Patient, not its Observations
    pat_only = token(jwt_server, claims(fhirUser="Patient/j1", scope="patient/Patient.rs"))
    r = call(jwt_server, "GET", "/fhir/Patient/j1/$everything", pat_only)
    assert r.status == 200, r.body
    assert {e["resource"]["resourceType"] for e in json.loads(r.body)["entry"]} == {"Patient"}
    # a chain through Patient matches nothing for a token that may not read Patients
    r = call(jwt_server, "GET", "/fhir/Observation?subject:Patient._id=j1", obs_only)
    assert r.status == 200 and json.loads(r.body).get("total", 0) == 0
    r = call(jwt_server, "GET", "/fhir/Observation?subject:Patient._id=j1", both)
    assert json.loads(r.body)["total"] >= 1


def test_a_type_scoped_jwt_exports_its_types_only(jwt_server, data):
    """Bulk Data export with a JWT whose scopes name types: the job keeps
    its own copy of the scope (the request that started it is gone when it
    counts), and the files hold the permitted types only."""
    tok = token(jwt_server, claims(fhirUser="Patient/j1",
                                   scope="patient/Observation.rs patient/Patient.rs"))
    h = CaseInsensitiveDict({"Accept": "application/fhir+json", "Authorization": f"Bearer {tok}",
                             "Prefer": "respond-async"})
    r = harness.http_exchange("GET", jwt_server.base + "/fhir/Patient/$export", h, None)
    assert r.status == 202, r.body
    status = r.header("Content-Location")
    for _ in range(600):
        r = call(jwt_server, "GET", status[len(jwt_server.base):], tok)
        if r.status == 200:
            break
        assert r.status == 202, r.body
        time.sleep(0.05)
    manifest = json.loads(r.body)
    types = {o["type"] for o in manifest["output"]}
    assert types and types <= {"Observation", "Patient"}, types
    for o in manifest["output"]:
        body = call(jwt_server, "GET", o["url"][len(jwt_server.base):], tok).body.decode()
        lines = [json.loads(l) for l in body.splitlines() if l]
        assert len(lines) == o["count"] and {l["resourceType"] for l in lines} == {o["type"]}
        # the patient's own compartment only
        assert all(l.get("subject", {}).get("reference", "Patient/j1") == "Patient/j1" for l in lines)
