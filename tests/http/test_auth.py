"""Identity over HTTP against the real binary: bearer tokens (RFC 6750),
the token CLI beside a running server, the admin token API, and the role
rules of docs/security.md for patients, devices, auditors and clinics
(without consent)."""

import json
import os
import shutil
import stat
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest
from requests.structures import CaseInsensitiveDict

import harness


@pytest.fixture(scope="module")
def srv(settings):
    root = Path(tempfile.mkdtemp(prefix="vitalog-auth-"))
    with harness.serving(settings.binary, root) as server:
        server.root = root
        server.binary = settings.binary
        yield server
    shutil.rmtree(root, ignore_errors=True)


def call(server, method, path, token=None, body=None, headers=None):
    """One exchange; token None: the admin token, "" none at all."""
    h = CaseInsensitiveDict({"Accept": "application/fhir+json"})
    if token is None:
        token = server.admin_token
    if token:
        h["Authorization"] = f"Bearer {token}"
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        h["Content-Type"] = "application/fhir+json"
    for k, v in (headers or {}).items():
        h[k] = v
    r = harness.http_exchange(method, server.base + path, h, data)
    assert not r.error, r.error
    return r


def outcome(r, status):
    assert r.status == status, f"expected {status}, got {r.status}: {r.body[:400]!r}"
    doc = json.loads(r.body)
    assert doc["resourceType"] == "OperationOutcome"
    return doc["issue"][0]


def cli(server, *args):
    return subprocess.run([str(server.binary), "token", *args, "--data", str(server.root)],
                          capture_output=True, text=True, timeout=60)


def new_token(server, role, subject, *extra):
    p = cli(server, "create", "--role", role, "--subject", subject, *extra)
    assert p.returncode == 0, p.stderr
    token = p.stdout.strip()
    assert token.startswith("vl1_") and len(token) == 47, token
    return token


def obs(patient, code="8867-4", value=72):
    return {"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
            "subject": {"reference": f"Patient/{patient}"},
            "effectiveDateTime": "2024-05-06T10:00:00Z",
            "valueQuantity": {"value": value, "unit": "/min", "system": "http://unitsofmeasure.org",
                              "code": "/min"}}


def ledger_size(server):
    r = call(server, "GET", "/ledger/checkpoint")
    assert r.status == 200
    return int(r.body.decode().split("\n")[1])


# ----------------------------------------------------------------------
# RFC 6750: challenges and public routes
# ----------------------------------------------------------------------

@pytest.mark.parametrize("method,path", [
    ("GET", "/fhir/Patient"), ("GET", "/fhir/Observation/x"), ("POST", "/fhir/Observation"),
    ("POST", "/fhir"), ("GET", "/ledger/export"), ("GET", "/ledger/checkpoint"),
    ("GET", "/metrics"), ("GET", "/auth/tokens"), ("DELETE", "/fhir/Patient/p1"),
])
def test_no_credentials_is_401_with_a_bare_challenge(srv, method, path):
    # a body that is not even JSON: the 401 comes first
    r = call(srv, method, path, token="", body=b"not json" if method == "POST" else None)
    issue = outcome(r, 401)
    assert issue["code"] == "login"
    assert r.header("WWW-Authenticate") == 'Bearer realm="vitalog"'


@pytest.mark.parametrize("header", [
    "Bearer vl1_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "Bearer nonsense", "Basic dXNlcjpwYXNz",
    "Bearer", "Bearer a b",
])
def test_bad_credentials_are_401_invalid_token(srv, header):
    r = call(srv, "GET", "/fhir/Patient", token="", headers={"Authorization": header})
    outcome(r, 401)
    challenge = r.header("WWW-Authenticate") or ""
    assert challenge.startswith('Bearer realm="vitalog", error="invalid_token", error_description="')


@pytest.mark.parametrize("path", ["/fhir/metadata", "/healthz", "/readyz"])
def test_public_routes_need_no_token_and_ignore_a_bad_one(srv, path):
    assert call(srv, "GET", path, token="").status == 200
    assert call(srv, "GET", path, token="", headers={"Authorization": "Bearer nope"}).status == 200


def test_secret_files_are_0600(srv):
    for name in ("admin.token", "token.key"):
        mode = stat.S_IMODE(os.stat(srv.root / name).st_mode)
        assert mode == 0o600, f"{name} has mode {mode:o}"
    assert srv.admin_token.startswith("vl1_")
    # the database holds no token in the clear
    assert srv.admin_token.encode() not in (srv.root / "vitalog.db").read_bytes()


# ----------------------------------------------------------------------
# Tokens: the CLI beside the running server, and the admin API
# ----------------------------------------------------------------------

def test_cli_tokens_work_and_a_revoke_counts_on_the_next_request(srv):
    pid = f"cli{uuid.uuid4().hex[:8]}"
    assert call(srv, "PUT", f"/fhir/Patient/{pid}", body={"resourceType": "Patient", "id": pid}).status == 201
    token = new_token(srv, "patient", f"Patient/{pid}", "--label", "phone", "--expires", "30d")
    assert call(srv, "GET", f"/fhir/Patient/{pid}", token=token).status == 200
    listed = cli(srv, "list", "--json")
    assert listed.returncode == 0
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    mine = [r for r in rows if r["subject"] == f"Patient/{pid}"]
    assert len(mine) == 1 and mine[0]["status"] == "active" and mine[0]["label"] == "phone"
    assert "expires" in mine[0] and token not in listed.stdout
    revoked = cli(srv, "revoke", mine[0]["id"])
    assert revoked.returncode == 0, revoked.stderr
    r = call(srv, "GET", f"/fhir/Patient/{pid}", token=token)
    outcome(r, 401)
    assert "revoked" in (r.header("WWW-Authenticate") or "")
    assert cli(srv, "revoke", "ffffffffffffffff").returncode == 1


@pytest.mark.parametrize("args", [
    ("--role", "patient", "--subject", "Organization/o1"),
    ("--role", "nobody", "--subject", "x"),
    ("--role", "clinic", "--subject", "Patient/p1"),
    ("--role", "admin", "--subject", "ops", "--expires", "soon"),
])
def test_cli_refuses_bad_requests(srv, args):
    p = cli(srv, "create", *args)
    assert p.returncode == 2 and not p.stdout


def test_token_api_is_admin_only_and_shows_the_secret_once(srv):
    r = call(srv, "POST", "/auth/tokens", body={"role": "auditor", "subject": "audit-team",
                                                "label": "q4", "expiresIn": 3600})
    assert r.status == 201, r.body
    assert r.header("Cache-Control") == "no-store"
    made = json.loads(r.body)
    assert made["token"].startswith("vl1_") and made["role"] == "auditor" and made["expires"]
    listing = call(srv, "GET", "/auth/tokens")
    assert listing.status == 200 and made["token"].encode() not in listing.body
    ids = {t["id"] for t in json.loads(listing.body)["tokens"]}
    assert made["id"] in ids
    # nobody but admin reaches the API
    outcome(call(srv, "GET", "/auth/tokens", token=made["token"]), 403)
    outcome(call(srv, "POST", "/auth/tokens", token=made["token"],
                 body={"role": "admin", "subject": "me"}), 403)
    # bad requests
    for bad in ({"role": "root", "subject": "x"}, {"role": "patient", "subject": "Patient/"},
                {"role": "admin", "subject": "x", "expires": "2020-01-01T00:00:00Z"},
                {"role": "admin", "subject": "x", "expiresIn": -5}, {"role": "admin"}):
        outcome(call(srv, "POST", "/auth/tokens", body=bad), 400)
    assert call(srv, "DELETE", f"/auth/tokens/{made['id']}").status == 204
    outcome(call(srv, "GET", "/ledger/checkpoint", token=made["token"]), 401)
    outcome(call(srv, "DELETE", "/auth/tokens/0123456789abcdef"), 404)


# ----------------------------------------------------------------------
# Roles
# ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def two_patients(srv):
    a, b = f"a{uuid.uuid4().hex[:8]}", f"b{uuid.uuid4().hex[:8]}"
    for p in (a, b):
        assert call(srv, "PUT", f"/fhir/Patient/{p}", body={"resourceType": "Patient", "id": p}).status == 201
    ids = {}
    for p in (a, b):
        r = call(srv, "POST", "/fhir/Observation", body=obs(p))
        assert r.status == 201
        ids[p] = json.loads(r.body)["id"]
    return a, b, ids


def test_a_patient_sees_only_their_compartment(srv, two_patients):
    a, b, ids = two_patients
    token = new_token(srv, "patient", f"Patient/{a}")
    r = call(srv, "GET", "/fhir/Observation?_count=100", token=token)
    assert r.status == 200
    bundle = json.loads(r.body)
    got = {e["resource"]["id"] for e in bundle.get("entry", [])}
    assert got == {ids[a]} and bundle["total"] == 1
    assert call(srv, "GET", f"/fhir/Observation/{ids[a]}", token=token).status == 200
    # another patient's record answers exactly like a missing one
    hidden = call(srv, "GET", f"/fhir/Observation/{ids[b]}", token=token)
    missing = call(srv, "GET", "/fhir/Observation/00000000000000000000000000000000", token=token)
    assert hidden.status == missing.status == 404
    assert call(srv, "GET", f"/fhir/Patient/{b}/_history", token=token).status == 404
    hist = json.loads(call(srv, "GET", "/fhir/Observation/_history", token=token).body)
    assert {e["resource"]["id"] for e in hist.get("entry", []) if "resource" in e} == {ids[a]}
    # the ledger: verification material yes, the export no
    assert call(srv, "GET", "/ledger/checkpoint", token=token).status == 200
    outcome(call(srv, "GET", "/ledger/export", token=token), 403)
    outcome(call(srv, "GET", "/metrics", token=token), 403)


def test_records_of_no_patient_here_are_not_shared(srv, two_patients):
    """An Observation whose subject is none of this server's patients (a
    Group, another server's patient) is in no patient's compartment and is
    not shared data either: only the admin reads it. One that names a
    patient by an absolute URL under this server's base is hers."""
    a, b, _ = two_patients
    token = new_token(srv, "patient", f"Patient/{a}")
    ids = {}
    for name, ref in (("group", "Group/g1"), ("foreign", "https://elsewhere.example/fhir/Patient/" + a),
                      ("absolute", srv.base + "/fhir/Patient/" + a)):
        body = obs(a)
        body["subject"] = {"reference": ref}
        r = call(srv, "POST", "/fhir/Observation", body=body)
        assert r.status == 201, r.body
        ids[name] = json.loads(r.body)["id"]
    for name in ("group", "foreign"):
        assert call(srv, "GET", f"/fhir/Observation/{ids[name]}", token=token).status == 404
        assert call(srv, "GET", f"/fhir/Observation/{ids[name]}").status == 200  # the admin
    assert call(srv, "GET", f"/fhir/Observation/{ids['absolute']}", token=token).status == 200
    got = {e["resource"]["id"] for e in json.loads(
        call(srv, "GET", "/fhir/Observation?_count=100", token=token).body).get("entry", [])}
    assert ids["absolute"] in got and ids["group"] not in got and ids["foreign"] not in got
    # and by the absolute URL of her own record, as the patient searches it
    r = call(srv, "GET", "/fhir/Observation?subject=" + srv.base + "/fhir/Patient/" + a, token=token)
    got = {e["resource"]["id"] for e in json.loads(r.body).get("entry", [])}
    assert ids["absolute"] in got


def test_a_patient_writes_only_in_their_compartment(srv, two_patients):
    a, b, ids = two_patients
    token = new_token(srv, "patient", f"Patient/{a}")
    assert call(srv, "POST", "/fhir/Observation", token=token, body=obs(a)).status == 201
    before = ledger_size(srv)
    issue = outcome(call(srv, "POST", "/fhir/Observation", token=token, body=obs(b)), 403)
    assert issue["code"] == "forbidden"
    # moving their own record to another patient is refused too
    moved = obs(b)
    moved["id"] = ids[a]
    outcome(call(srv, "PUT", f"/fhir/Observation/{ids[a]}", token=token, body=moved), 403)
    # another patient's record: update refused, delete answers like a missing one
    other = obs(b, value=99)
    other["id"] = ids[b]
    outcome(call(srv, "PUT", f"/fhir/Observation/{ids[b]}", token=token, body=other), 403)
    outcome(call(srv, "DELETE", f"/fhir/Observation/{ids[b]}", token=token), 404)
    # a transaction with one entry outside: nothing of it is written
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": obs(a), "request": {"method": "POST", "url": "Observation"}},
        {"resource": obs(b), "request": {"method": "POST", "url": "Observation"}}]}
    outcome(call(srv, "POST", "/fhir", token=token, body=bundle), 403)
    assert ledger_size(srv) == before
    admin_view = json.loads(call(srv, "GET", f"/fhir/Observation/{ids[b]}").body)
    assert admin_view["valueQuantity"]["value"] == 72 and admin_view["meta"]["versionId"] == "1"


def test_a_device_writes_for_its_patient_and_reads_nothing(srv, two_patients):
    a, b, ids = two_patients
    token = new_token(srv, "device", f"Patient/{a}")
    assert call(srv, "POST", "/fhir/Observation", token=token, body=obs(a)).status == 201
    device = {"resourceType": "Device", "patient": {"reference": f"Patient/{a}"}}
    assert call(srv, "POST", "/fhir/Device", token=token, body=device).status == 201
    outcome(call(srv, "POST", "/fhir/Observation", token=token, body=obs(b)), 403)
    outcome(call(srv, "GET", f"/fhir/Observation/{ids[a]}", token=token), 403)
    outcome(call(srv, "GET", "/fhir/Observation", token=token), 403)
    outcome(call(srv, "DELETE", f"/fhir/Observation/{ids[a]}", token=token), 403)
    outcome(call(srv, "POST", "/fhir/Patient", token=token,
                 body={"resourceType": "Patient"}), 403)
    outcome(call(srv, "GET", "/ledger/export", token=token), 403)


def test_an_auditor_reads_the_ledger_and_never_a_record(srv, two_patients):
    a, b, ids = two_patients
    token = new_token(srv, "auditor", "audit@example.org")
    for path in ("/ledger/export", "/ledger/checkpoint", "/ledger/keys", "/ledger/entries?start=0&end=1"):
        assert call(srv, "GET", path, token=token).status == 200, path
    for path in (f"/fhir/Observation/{ids[a]}", "/fhir/Observation", f"/fhir/Patient/{a}/_history",
                 f"/fhir/Observation/{ids[a]}/_history/1/$ledger"):
        outcome(call(srv, "GET", path, token=token), 403)
    outcome(call(srv, "POST", "/fhir/Observation", token=token, body=obs(a)), 403)


def test_a_clinic_without_consent_sees_no_patient_data(srv, two_patients):
    a, b, ids = two_patients
    token = new_token(srv, "clinic", "Organization/clinic-1")
    org = call(srv, "POST", "/fhir/Organization", body={"resourceType": "Organization", "name": "Shared"})
    assert org.status == 201
    bundle = json.loads(call(srv, "GET", "/fhir/Observation", token=token).body)
    assert bundle["total"] == 0
    outcome(call(srv, "GET", f"/fhir/Observation/{ids[a]}", token=token), 404)
    assert call(srv, "GET", "/fhir/Organization", token=token).status == 200
    outcome(call(srv, "POST", "/fhir/Observation", token=token, body=obs(a)), 403)


def test_the_capability_statement_describes_the_security(srv):
    cs = json.loads(call(srv, "GET", "/fhir/metadata", token="").body)
    security = cs["rest"][0]["security"]
    assert "Bearer" in security["description"] and security["cors"] is False


# ----------------------------------------------------------------------
# Isolation: no route gives a patient another patient's data
# ----------------------------------------------------------------------

def obs_with_identifier(patient, value):
    body = obs(patient)
    body["identifier"] = [{"system": "urn:iso", "value": value}]
    return body


def test_isolation_by_every_route(srv):
    a, b = f"ia{uuid.uuid4().hex[:6]}", f"ib{uuid.uuid4().hex[:6]}"
    for p in (a, b):
        assert call(srv, "PUT", f"/fhir/Patient/{p}", body={"resourceType": "Patient", "id": p}).status == 201
    secret = f"s{uuid.uuid4().hex[:8]}"
    r = call(srv, "POST", "/fhir/Observation", body=obs_with_identifier(b, secret))
    bid = json.loads(r.body)["id"]
    for i in range(3):
        assert call(srv, "POST", "/fhir/Observation", body=obs_with_identifier(a, f"a{i}")).status == 201
    ta = new_token(srv, "patient", f"Patient/{a}")
    # conditional create matching b's identifier: a's search sees nothing, so it creates a's own
    r = call(srv, "POST", "/fhir/Observation", token=ta, body=obs_with_identifier(a, secret),
             headers={"If-None-Exist": f"identifier=urn:iso|{secret}"})
    assert r.status == 201 and json.loads(r.body)["id"] != bid
    # conditional update and delete by b's identifier do not touch b's record
    r = call(srv, "PUT", f"/fhir/Observation?identifier=urn:iso|{secret}", token=ta,
             body=obs_with_identifier(a, secret))
    assert r.status in (200, 201)
    assert json.loads(r.body)["subject"]["reference"] == f"Patient/{a}"
    assert call(srv, "DELETE", f"/fhir/Observation?identifier=urn:iso|{secret}", token=ta).status in (200, 204)
    kept = json.loads(call(srv, "GET", f"/fhir/Observation/{bid}").body)
    assert kept["meta"]["versionId"] == "1" and kept["subject"]["reference"] == f"Patient/{b}"
    # the same error text for a hidden record as for a missing one
    hidden = json.loads(call(srv, "GET", f"/fhir/Observation/{bid}", token=ta).body)
    missing_id = "0" * 31 + "1"
    missing = json.loads(call(srv, "GET", f"/fhir/Observation/{missing_id}", token=ta).body)
    assert hidden["issue"][0]["diagnostics"].replace(bid, "X") == \
        missing["issue"][0]["diagnostics"].replace(missing_id, "X")
    # totals and paging links, also with b's patient put into them
    page = json.loads(call(srv, "GET", "/fhir/Observation?_count=1", token=ta).body)
    # a's three: the conditional create made a fourth, the conditional update
    # matched that one (a's search sees no other), the delete removed it
    assert page["total"] == 3
    nxt = next(l["url"] for l in page["link"] if l["relation"] == "next")
    # a next link is a cursor sealed for its own query: widened, it is refused
    tampered = nxt.replace("_count=1", f"_count=100&patient={b}")
    r = call(srv, "GET", tampered[len(srv.base):], token=ta)
    assert r.status == 400 and json.loads(r.body)["resourceType"] == "OperationOutcome"
    assert bid not in r.body.decode()
    r = call(srv, "GET", f"/fhir/Observation?identifier=urn:iso|{secret}&_total=accurate", token=ta)
    assert all(e["resource"]["subject"]["reference"] == f"Patient/{a}" for e in json.loads(r.body).get("entry", []))
    # history, $ledger and Bundles
    assert call(srv, "GET", f"/fhir/Observation/{bid}/_history", token=ta).status == 404
    assert call(srv, "GET", f"/fhir/Observation/{bid}/_history/1/$ledger", token=ta).status == 404
    batch = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": f"Observation/{bid}"}},
        {"request": {"method": "GET", "url": f"Observation?identifier=urn:iso|{secret}"}}]}
    out = json.loads(call(srv, "POST", "/fhir", token=ta, body=batch).body)
    assert out["entry"][0]["response"]["status"].startswith("404")
    assert out["entry"][1]["resource"]["total"] == 0  # the id only echoes the request
    assert f"Patient/{b}" not in json.dumps(out)
    tx = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "GET", "url": f"Observation/{bid}"}}]}
    assert call(srv, "POST", "/fhir", token=ta, body=tx).status == 404
    # b's Patient resource and the AuditEvents about b
    assert call(srv, "GET", f"/fhir/Patient/{b}", token=ta).status == 404
    r = json.loads(call(srv, "GET", f"/fhir/AuditEvent?patient=Patient/{b}", token=ta).body)
    assert r["total"] == 0
