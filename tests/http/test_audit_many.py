"""The accounting of disclosures when one answer holds many patients'
data (docs/security.md): beyond 64 patients the AuditEvents are built one
at a time inside their unit (src/fhir/audit.c PREPARED_MAX); every patient
still gets exactly one, committed before the answer leaves."""

import json
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest
from requests.structures import CaseInsensitiveDict

import harness


@pytest.fixture(scope="module")
def srv(settings):
    root = Path(tempfile.mkdtemp(prefix="vitalog-audit-"))
    with harness.serving(settings.binary, root) as server:
        yield server
    shutil.rmtree(root, ignore_errors=True)


def call(server, method, path, body=None):
    h = CaseInsensitiveDict({"Accept": "application/fhir+json",
                             "Authorization": f"Bearer {server.admin_token}"})
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/fhir+json"
    r = harness.http_exchange(method, server.base + path, h, data)
    assert not r.error, r.error
    return r


def audit_count(server):
    r = call(server, "GET", "/fhir/AuditEvent?_summary=count")
    assert r.status == 200, r.body[:300]
    return json.loads(r.body)["total"]


@pytest.mark.parametrize("patients", [3, 65, 150])
def test_one_audit_event_per_patient_disclosed(srv, patients):
    uid = uuid.uuid4().hex[:8]
    entries = []
    for i in range(patients):
        pid = f"am{uid}{i}"
        entries.append({"resource": {"resourceType": "Patient", "id": pid},
                        "request": {"method": "PUT", "url": f"Patient/{pid}"}})
        entries.append({"resource": {"resourceType": "Observation", "id": f"ao{uid}{i}",
                                     "status": "final",
                                     "code": {"coding": [{"system": "http://example.org/am", "code": uid}]},
                                     "subject": {"reference": f"Patient/{pid}"}},
                        "request": {"method": "PUT", "url": f"Observation/ao{uid}{i}"}})
    r = call(srv, "POST", "/fhir", {"resourceType": "Bundle", "type": "transaction", "entry": entries})
    assert r.status == 200, r.body[:300]
    before = audit_count(srv)
    r = call(srv, "GET", f"/fhir/Observation?code=http://example.org/am%7C{uid}&_count=200")
    assert r.status == 200 and len(json.loads(r.body)["entry"]) == patients
    # counting discloses nothing: the difference is this search's
    assert audit_count(srv) == before + patients
    # each patient's accounting names this search's resource of theirs
    for i in (0, patients // 2, patients - 1):
        r = call(srv, "GET", f"/fhir/AuditEvent?patient=Patient/am{uid}{i}")
        events = [e["resource"] for e in json.loads(r.body).get("entry", [])]
        assert len(events) == 1, events
        whats = [e.get("what", {}).get("reference", "") for e in events[0]["entity"]]
        assert any(w.startswith(f"Observation/ao{uid}{i}/_history/1") for w in whats), whats
