"""Consent over HTTP against the real binary: grants and revokes anchored in
the ledger (docs/ledger.md 2.1), checked by vitalog verify and by the
independent verifier written from the docs (tests/ledger)."""

import json
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest
from requests.structures import CaseInsensitiveDict

import harness

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def srv(settings):
    root = Path(tempfile.mkdtemp(prefix="vitalog-consent-"))
    with harness.serving(settings.binary, root) as server:
        server.root = root
        server.binary = settings.binary
        yield server
    shutil.rmtree(root, ignore_errors=True)


def call(server, method, path, token=None, body=None):
    h = CaseInsensitiveDict({"Accept": "application/fhir+json",
                             "Authorization": f"Bearer {token or server.admin_token}"})
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/fhir+json"
    r = harness.http_exchange(method, server.base + path, h, data)
    assert not r.error, r.error
    return r


def consent(cid, patient, status="active", actor="Organization/o1", **provision):
    prov = {"type": "permit",
            "actor": [{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                            "code": "PRCP"}]},
                       "reference": {"reference": actor}}],
            "action": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentaction",
                                    "code": "access"}]}]}
    prov.update(provision)
    return {"resourceType": "Consent", "id": cid, "status": status,
            "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                                  "code": "patient-privacy"}]},
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
            "patient": {"reference": f"Patient/{patient}"},
            "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                                       "code": "OPTIN"}]},
            "provision": prov}


def entries_after(server, start):
    size = size_now(server)
    if size <= start:
        return []
    r = call(server, "GET", f"/ledger/entries?start={start}&end={size}")
    assert r.status == 200
    return [json.loads(line) for line in r.body.decode().splitlines()]


def size_now(server):
    r = call(server, "GET", "/ledger/checkpoint")
    if r.status == 404:  # no entry yet
        return 0
    return int(r.body.decode().split("\n")[1])


def test_grants_and_revokes_are_anchored(srv):
    cid, pid = f"c{uuid.uuid4().hex[:10]}", f"p{uuid.uuid4().hex[:8]}"
    steps = [  # body (None: delete), the consent kinds expected after the version's own entry
        (consent(cid, pid, status="draft"), []),
        (consent(cid, pid), ["consent.grant"]),
        (dict(consent(cid, pid), text={"status": "generated",
                                       "div": '<div xmlns="http://www.w3.org/1999/xhtml">x</div>'}), []),
        (consent(cid, pid, actor="Organization/o2"), ["consent.revoke", "consent.grant"]),
        (consent(cid, pid, actor="Organization/o2", status="inactive"), ["consent.revoke"]),
        (consent(cid, pid, actor="Organization/o2", status="rejected"), []),
        (consent(cid, pid, actor="Organization/o2"), ["consent.grant"]),
        (None, ["consent.revoke"]),
    ]
    for version, (body, kinds) in enumerate(steps, start=1):
        start = size_now(srv)
        if body is None:
            r = call(srv, "DELETE", f"/fhir/Consent/{cid}")
            assert r.status == 204
        else:
            r = call(srv, "PUT", f"/fhir/Consent/{cid}", body=body)
            assert r.status in (200, 201), r.body
        got = entries_after(srv, start)
        ref = f"Consent/{cid}/_history/{version}"
        assert [e["ref"] for e in got] == [ref] * (1 + len(kinds)), got
        assert [e["kind"] for e in got[1:]] == kinds, f"version {version}: {got}"
        assert len({e["commitment"] for e in got}) == 1
        # the receipt names the version's own entry
        assert int(r.header("X-Ledger-Index")) == got[0]["index"]


def test_the_export_verifies_with_both_verifiers(srv):
    key = call(srv, "GET", "/ledger/key").body
    export = call(srv, "GET", "/ledger/export").body
    if b'"kind":"consent.grant"' not in export:  # run alone: write one
        call(srv, "PUT", "/fhir/Consent/solo", body=consent("solo", "p1"))
        export = call(srv, "GET", "/ledger/export").body
    assert b'"kind":"consent.grant"' in export
    work = Path(tempfile.mkdtemp(prefix="vitalog-consent-verify-"))
    try:
        (work / "key").write_bytes(key)
        (work / "export.ndjson").write_bytes(export)
        ours = subprocess.run([str(srv.binary), "verify", "--key", str(work / "key"),
                               str(work / "export.ndjson")], capture_output=True, text=True, timeout=60)
        assert ours.returncode == 0, ours.stderr
        probe = subprocess.run(["/usr/bin/python3", "-c", "import nacl.signing"], capture_output=True)
        if probe.returncode != 0:
            pytest.skip("no PyNaCl for the independent verifier")
        theirs = subprocess.run(["/usr/bin/python3", str(REPO / "tests/ledger/independent_verify.py"),
                                 "--key", str(work / "key"), str(work / "export.ndjson")],
                                capture_output=True, text=True, timeout=120)
        assert theirs.returncode == 0, theirs.stdout + theirs.stderr
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ----------------------------------------------------------------------
# The accounting of disclosures
# ----------------------------------------------------------------------

def new_token(server, *args):
    p = subprocess.run([str(server.binary), "token", "create", "--data", str(server.root), *args],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def heart_rate(patient):
    return {"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "subject": {"reference": f"Patient/{patient}"},
            "effectiveDateTime": "2024-05-06T10:00:00Z",
            "valueQuantity": {"value": 70, "unit": "/min", "system": "http://unitsofmeasure.org",
                              "code": "/min"}}


def audit_events(server, token, patient):
    r = call(server, "GET", f"/fhir/AuditEvent?patient=Patient/{patient}&_count=1000", token=token)
    assert r.status == 200, r.body
    return [e["resource"] for e in json.loads(r.body).get("entry", [])]


def test_disclosures_are_recorded_per_patient_and_provable(srv):
    a, b = f"da{uuid.uuid4().hex[:6]}", f"db{uuid.uuid4().hex[:6]}"
    ids = {}
    for p in (a, b):
        assert call(srv, "PUT", f"/fhir/Patient/{p}", body={"resourceType": "Patient", "id": p}).status == 201
        r = call(srv, "POST", "/fhir/Observation", body=heart_rate(p))
        ids[p] = json.loads(r.body)["id"]
        assert call(srv, "PUT", f"/fhir/Consent/{p}-c", body=consent(f"{p}-c", p, actor="Organization/acct",
                    **{"class": [{"system": "http://hl7.org/fhir/resource-types", "code": "Observation"}]})).status == 201
    pa = new_token(srv, "--role", "patient", "--subject", f"Patient/{a}")
    clinic = new_token(srv, "--role", "clinic", "--subject", "Organization/acct")
    # a patient's own reads disclose nothing
    assert call(srv, "GET", f"/fhir/Observation/{ids[a]}", token=pa).status == 200
    assert audit_events(srv, pa, a) == []
    # a clinic's search over both patients: one AuditEvent each, with the Consent
    start = size_now(srv)
    r = call(srv, "GET", "/fhir/Observation?code=http://loinc.org|8867-4&_count=1000", token=clinic)
    got = {e["resource"]["id"] for e in json.loads(r.body)["entry"]}
    assert {ids[a], ids[b]} <= got
    kinds = [e["kind"] for e in entries_after(srv, start)]
    assert kinds.count("access.disclose") >= 2 and set(kinds) == {"access.disclose"}
    events = audit_events(srv, pa, a)
    assert len(events) == 1
    ev = events[0]
    assert ev["type"]["code"] == "rest" and ev["subtype"][0]["code"] == "search-type"
    assert ev["action"] == "E" and ev["outcome"] == "0" and ev["recorded"]
    assert ev["agent"][0]["who"] == {"reference": "Organization/acct"} and ev["agent"][0]["requestor"] is True
    whats = [e.get("what", {}).get("reference") for e in ev["entity"]]
    assert f"Patient/{a}" in whats and f"Consent/{a}-c" in whats
    assert f"Patient/{b}" not in whats and f"Consent/{b}-c" not in whats
    assert any(e.get("query") for e in ev["entity"])
    # the patient proves the entry with $ledger
    r = call(srv, "GET", f"/fhir/AuditEvent/{ev['id']}/_history/1/$ledger", token=pa)
    assert r.status == 200, r.body
    assert b"access.disclose" in r.body
    # a read by id: the resource named
    call(srv, "GET", f"/fhir/Observation/{ids[b]}", token=clinic)
    last = [e for e in audit_events(srv, new_token(srv, "--role", "patient", "--subject", f"Patient/{b}"), b)
            if e["subtype"][0]["code"] == "read"]
    assert last and any(e.get("what", {}).get("reference") == f"Observation/{ids[b]}/_history/1"
                        for e in last[0]["entity"])


def test_audit_events_are_read_only_for_everyone(srv):
    r = call(srv, "GET", "/fhir/AuditEvent?_count=1")
    bundle = json.loads(r.body)
    assert bundle.get("entry"), "no AuditEvent yet"
    aid = bundle["entry"][0]["resource"]["id"]
    body = dict(bundle["entry"][0]["resource"], outcome="4")
    assert call(srv, "PUT", f"/fhir/AuditEvent/{aid}", body=body).status == 405
    assert call(srv, "DELETE", f"/fhir/AuditEvent/{aid}").status == 405
    assert call(srv, "POST", "/fhir/AuditEvent", body=body).status == 405
    tx = {"resourceType": "Bundle", "type": "transaction",
          "entry": [{"request": {"method": "DELETE", "url": f"AuditEvent/{aid}"}}]}
    assert call(srv, "POST", "/fhir", body=tx).status == 405


def test_reads_under_several_consents_keep_each_patients_denies(srv):
    """A clinic with Consents of several patients: a read by id is decided
    with the rules of the record's own patients (the store keeps only
    those), and a deny of one patient still holds."""
    pats = [f"dn{i}{uuid.uuid4().hex[:5]}" for i in range(3)]
    ids = {}
    for i, p in enumerate(pats):
        assert call(srv, "PUT", f"/fhir/Patient/{p}", body={"resourceType": "Patient", "id": p}).status == 201
        ids[p] = json.loads(call(srv, "POST", "/fhir/Observation", body=heart_rate(p)).body)["id"]
        nested = [{"type": "deny", "code": [{"coding": [{"system": "http://loinc.org", "code": "8867-4"}]}]}]
        body = consent(f"{p}-dn", p, actor="Organization/several",
                       **({"provision": nested} if i == 0 else {}))
        assert call(srv, "PUT", f"/fhir/Consent/{p}-dn", body=body).status == 201
    clinic = new_token(srv, "--role", "clinic", "--subject", "Organization/several")
    assert call(srv, "GET", f"/fhir/Observation/{ids[pats[0]]}", token=clinic).status == 404
    assert call(srv, "GET", f"/fhir/Observation/{ids[pats[1]]}", token=clinic).status == 200
    assert call(srv, "GET", f"/fhir/Observation/{ids[pats[2]]}/_history/1", token=clinic).status == 200
    assert call(srv, "GET", f"/fhir/Patient/{pats[0]}", token=clinic).status == 200
