"""PATCH [base]/[type]/[id] against the real binary (docs/api.md, PATCH):
JSON Patch (RFC 6902) and FHIRPath Patch, each a new version that is
searchable, in the history and anchored in the ledger; If-Match; a patch
that would leave an invalid resource changes nothing (not the record, not
the ledger); malformed patches, other content types, unknown and deleted
resources; a patient's token and another patient's record; two PATCHes at
once both apply."""

import json
import shutil
import subprocess
import tempfile
import threading
import uuid
from pathlib import Path

import pytest
import requests

import harness

JSON_PATCH = "application/json-patch+json"
FHIR_JSON = "application/fhir+json"


@pytest.fixture(scope="module")
def srv(settings):
    root = Path(tempfile.mkdtemp(prefix="vitalog-patch-"))
    with harness.serving(settings.binary, root) as server:
        server.root = root
        server.binary = settings.binary
        for pid in ("alice", "bob"):
            r = call(server, "PUT", f"/fhir/Patient/{pid}", {"resourceType": "Patient", "id": pid})
            assert r.status_code in (200, 201), r.text[:300]
        yield server
    shutil.rmtree(root, ignore_errors=True)


def call(server, method, path, body=None, ctype=FHIR_JSON, token=None, **headers):
    h = {"Authorization": f"Bearer {token or server.admin_token}", "Accept": FHIR_JSON}
    h.update({k.replace("_", "-"): v for k, v in headers.items()})
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        if ctype:
            h["Content-Type"] = ctype
    return requests.request(method, server.base + path, data=data, headers=h, timeout=60)


def patch(server, oid, body, ctype=JSON_PATCH, **kw):
    return call(server, "PATCH", f"/fhir/Observation/{oid}", body, ctype, **kw)


def heart_rate(patient="alice", value=70):
    return {"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "subject": {"reference": f"Patient/{patient}"},
            "effectiveDateTime": "2024-05-06T10:00:00Z",
            "valueQuantity": {"value": value, "unit": "/min",
                              "system": "http://unitsofmeasure.org", "code": "/min"}}


def create(server, body=None):
    r = call(server, "POST", "/fhir/Observation", body or heart_rate())
    assert r.status_code == 201, r.text[:300]
    return r.json()["id"]


def read(server, oid, version=None):
    path = f"/fhir/Observation/{oid}" + (f"/_history/{version}" if version else "")
    r = call(server, "GET", path)
    assert r.status_code == 200, r.text[:300]
    return r.json()


def ledger_size(server):
    r = call(server, "GET", "/ledger/checkpoint")
    assert r.status_code == 200, r.text[:200]
    return int(r.text.splitlines()[1])


def history(server, oid):
    r = call(server, "GET", f"/fhir/Observation/{oid}/_history")
    assert r.status_code == 200, r.text[:300]
    return r.json()


def operation(type_, path, **parts):
    """One FHIRPath Patch operation parameter; parts given as name=(key, value)
    pairs, e.g. value=("valueCode", "amended"), index=("valueInteger", 0)."""
    p = [{"name": "type", "valueCode": type_}, {"name": "path", "valueString": path}]
    for name, (key, value) in parts.items():
        p.append({"name": name, key: value})
    return {"name": "operation", "part": p}


def parameters(*ops):
    return {"resourceType": "Parameters", "parameter": list(ops)}


def issues(r):
    body = r.json()
    assert body["resourceType"] == "OperationOutcome", body
    return body["issue"]


def new_token(server, role, subject):
    p = subprocess.run([str(server.binary), "token", "create", "--role", role, "--subject",
                        subject, "--data", str(server.root)], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


# ----------------------------------------------------------------------
# JSON Patch
# ----------------------------------------------------------------------

def test_json_patch_is_a_new_version_searchable_and_anchored(srv):
    oid = create(srv)
    before = ledger_size(srv)
    r = patch(srv, oid, [{"op": "test", "path": "/status", "value": "final"},
                         {"op": "replace", "path": "/valueQuantity/value", "value": 99},
                         {"op": "add", "path": "/note", "value": [{"text": "after a run"}]}])
    assert r.status_code == 200, r.text[:400]
    assert r.headers["ETag"] == 'W/"2"'
    assert r.headers["Location"].endswith(f"/fhir/Observation/{oid}/_history/2")
    assert r.headers.get("Last-Modified")
    assert r.headers.get("X-Ledger-Index")
    body = r.json()
    assert body["meta"]["versionId"] == "2" and body["id"] == oid
    assert body["valueQuantity"]["value"] == 99 and body["note"] == [{"text": "after a run"}]
    # the stored version is the answer; version 1 is kept as it was
    assert read(srv, oid) == body
    assert read(srv, oid, 1)["valueQuantity"]["value"] == 70
    # searchable by the new value, no longer by the old one
    found = call(srv, "GET", "/fhir/Observation?subject=Patient/alice&value-quantity=99").json()
    assert [e["resource"]["id"] for e in found.get("entry", [])] == [oid]
    old = call(srv, "GET", f"/fhir/Observation?_id={oid}&value-quantity=70").json()
    assert old.get("total", 0) == 0 and not old.get("entry")
    # one version entry in the ledger (an admin's view of the patched
    # representation is a disclosure: its AuditEvent is anchored too)
    assert ledger_size(srv) >= before + 1
    h = history(srv, oid)
    assert h["total"] == 2
    assert [e["resource"]["meta"]["versionId"] for e in h["entry"]] == ["2", "1"]
    assert h["entry"][0]["request"]["method"] == "PUT"


def test_json_patch_pointer_escapes_and_arrays(srv):
    body = heart_rate()
    body["identifier"] = [{"system": "urn:a/b", "value": "1"}, {"system": "urn:c", "value": "2"}]
    oid = create(srv, body)
    r = patch(srv, oid, [{"op": "move", "from": "/identifier/0", "path": "/identifier/-"},
                         {"op": "copy", "from": "/identifier/0/system", "path": "/identifier/1/id"},
                         {"op": "remove", "path": "/identifier/1/id"},
                         {"op": "test", "path": "/identifier/1/system", "value": "urn:a/b"}])
    assert r.status_code == 200, r.text[:400]
    assert [i["value"] for i in r.json()["identifier"]] == ["2", "1"]


def test_prefer_minimal_and_outcome(srv):
    oid = create(srv)
    r = patch(srv, oid, [{"op": "replace", "path": "/status", "value": "amended"}],
              Prefer="return=minimal")
    assert r.status_code == 200 and not r.content and r.headers["ETag"] == 'W/"2"'
    r = patch(srv, oid, [{"op": "replace", "path": "/status", "value": "corrected"}],
              Prefer="return=OperationOutcome")
    assert r.status_code == 200 and r.json()["resourceType"] == "OperationOutcome"
    assert read(srv, oid)["status"] == "corrected"


# ----------------------------------------------------------------------
# FHIRPath Patch
# ----------------------------------------------------------------------

def test_fhirpath_patch_each_operation(srv):
    body = heart_rate()
    body["identifier"] = [{"value": "a"}, {"value": "b"}, {"value": "c"}]
    oid = create(srv, body)
    steps = [
        (operation("replace", "Observation.status", value=("valueCode", "amended")),
         lambda o: o["status"] == "amended"),
        (operation("add", "Observation", name=("valueString", "note"),
                   value=("valueAnnotation", {"text": "checked"})),
         lambda o: o["note"] == [{"text": "checked"}]),
        (operation("insert", "Observation.identifier", value=("valueIdentifier", {"value": "x"}),
                   index=("valueInteger", 1)),
         lambda o: [i["value"] for i in o["identifier"]] == ["a", "x", "b", "c"]),
        (operation("move", "Observation.identifier", source=("valueInteger", 0),
                   destination=("valueInteger", 3)),
         lambda o: [i["value"] for i in o["identifier"]] == ["x", "b", "c", "a"]),
        (operation("delete", "Observation.identifier.where(value = 'b')"),
         lambda o: [i["value"] for i in o["identifier"]] == ["x", "c", "a"]),
        (operation("replace", "Observation.value.value", value=("valueDecimal", 88)),
         lambda o: o["valueQuantity"]["value"] == 88),
        (operation("delete", "Observation.note"), lambda o: "note" not in o),
        (operation("delete", "Observation.note"), lambda o: "note" not in o),  # none: no change
    ]
    for version, (op, check) in enumerate(steps, 2):
        r = patch(srv, oid, parameters(op), ctype=FHIR_JSON)
        assert r.status_code == 200, (op, r.text[:400])
        assert r.headers["ETag"] == f'W/"{version}"'
        assert check(r.json()), (op, r.json())
        assert check(read(srv, oid))
    assert history(srv, oid)["total"] == len(steps) + 1
    # several operations in one patch, applied in order, as one version
    r = patch(srv, oid, parameters(
        operation("add", "Observation", name=("valueString", "component"),
                  value=("part", [{"name": "code", "valueCodeableConcept": {"text": "rr"}},
                                  {"name": "value", "valueQuantity": {"value": 16}}])),
        operation("replace", "Observation.component.where(code.text = 'rr').value.value",
                  value=("valueDecimal", 17))), ctype="application/json")
    assert r.status_code == 200, r.text[:400]
    assert r.json()["component"] == [{"code": {"text": "rr"}, "valueQuantity": {"value": 17}}]
    assert r.headers["ETag"] == f'W/"{len(steps) + 2}"'


def test_fhirpath_patch_errors_name_the_operation(srv):
    oid = create(srv)
    r = patch(srv, oid, parameters(operation("replace", "Observation.status",
                                             value=("valueCode", "amended")),
                                   operation("delete", "Observation.identifier.exists()")),
              ctype=FHIR_JSON)
    assert r.status_code == 422
    issue = issues(r)[0]
    assert issue["code"] == "not-supported"
    assert "operation 1" in issue["diagnostics"] and "exists()" in issue["diagnostics"]
    assert issue["expression"] == ["Observation.identifier.exists()"]
    r = patch(srv, oid, parameters(operation("replace", "Observation.issued",
                                             value=("valueInstant", "2024-01-01T00:00:00Z"))),
              ctype=FHIR_JSON)
    assert r.status_code == 422 and "selects nothing" in issues(r)[0]["diagnostics"]
    assert read(srv, oid)["meta"]["versionId"] == "1" and read(srv, oid)["status"] == "final"


# ----------------------------------------------------------------------
# If-Match, and two PATCHes at once
# ----------------------------------------------------------------------

def test_if_match(srv):
    oid = create(srv)
    op = [{"op": "replace", "path": "/status", "value": "amended"}]
    r = patch(srv, oid, op, If_Match='W/"1"')
    assert r.status_code == 200 and r.headers["ETag"] == 'W/"2"'
    r = patch(srv, oid, op, If_Match='W/"1"')
    assert r.status_code == 412, r.text[:300]
    assert "current version is 2" in issues(r)[0]["diagnostics"]
    r = patch(srv, oid, op, If_Match="yesterday")
    assert r.status_code == 400
    assert read(srv, oid)["meta"]["versionId"] == "2"


def test_concurrent_patches_both_apply(srv):
    body = heart_rate()
    body["note"] = [{"text": "start"}]
    oid = create(srv, body)
    n = 8
    barrier = threading.Barrier(n)
    results = []

    def one(i):
        barrier.wait()
        r = patch(srv, oid, [{"op": "add", "path": "/note/-", "value": {"text": f"n{i}"}}])
        results.append(r.status_code)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * n, results
    final = read(srv, oid)
    assert final["meta"]["versionId"] == str(n + 1)
    assert sorted(x["text"] for x in final["note"]) == sorted(["start"] + [f"n{i}" for i in range(n)])


# ----------------------------------------------------------------------
# What changes nothing
# ----------------------------------------------------------------------

@pytest.mark.parametrize("why,body,ctype", [
    ("remove a required element", [{"op": "remove", "path": "/status"}], JSON_PATCH),
    ("a code outside its value set", [{"op": "replace", "path": "/status", "value": "bogus"}],
     JSON_PATCH),
    ("an unknown element", [{"op": "add", "path": "/colour", "value": "red"}], JSON_PATCH),
    ("change the id", [{"op": "replace", "path": "/id", "value": "other"}], JSON_PATCH),
    ("change the type", [{"op": "replace", "path": "/resourceType", "value": "Patient"}],
     JSON_PATCH),
    ("a failed test", [{"op": "test", "path": "/status", "value": "preliminary"}], JSON_PATCH),
    ("a missing target", [{"op": "remove", "path": "/valueQuantity/comparator"}], JSON_PATCH),
    ("FHIRPath: a bad code", parameters(operation("replace", "Observation.status",
                                                  value=("valueCode", "bogus"))), FHIR_JSON),
    ("FHIRPath: delete a required element", parameters(operation("delete", "Observation.code")),
     FHIR_JSON),
])
def test_unprocessable_patches_store_nothing(srv, why, body, ctype):
    oid = create(srv)
    before = ledger_size(srv)
    r = patch(srv, oid, body, ctype=ctype)
    assert r.status_code == 422, (why, r.text[:400])
    # before anything is read back (an admin's reads are disclosures, anchored):
    # nothing of the resource; a failed `test` told the admin about the
    # stored content, so that one disclosure (one access.disclose) is anchored
    disclosed = 1 if any(o.get("op") == "test" for o in body if isinstance(o, dict)) else 0
    assert ledger_size(srv) == before + disclosed
    assert issues(r)[0]["severity"] == "error"
    assert read(srv, oid)["meta"]["versionId"] == "1"
    assert read(srv, oid) == read(srv, oid, 1)
    assert history(srv, oid)["total"] == 1


def test_invalid_result_names_the_element(srv):
    oid = create(srv)
    r = patch(srv, oid, [{"op": "replace", "path": "/status", "value": "bogus"}])
    assert r.status_code == 422
    assert any("Observation.status" in e for i in issues(r) for e in i.get("expression", []))
    r = patch(srv, oid, [{"op": "remove", "path": "/status"},
                         {"op": "remove", "path": "/nope"}])
    assert r.status_code == 422
    d = issues(r)[0]["diagnostics"]
    assert "operation 1" in d and "/nope" in d


@pytest.mark.parametrize("body,ctype,part", [
    (b"[{\"op\": ", JSON_PATCH, ""),
    ({"op": "replace", "path": "/status", "value": "x"}, JSON_PATCH, "array of operations"),
    ([{"op": "frobnicate", "path": "/status"}], JSON_PATCH, "'op'"),
    ([{"op": "replace", "path": "status", "value": "x"}], JSON_PATCH, "JSON Pointer"),
    ([{"op": "replace", "path": "/status"}], JSON_PATCH, "'value'"),
    ([{"op": "add", "path": "/x", "value": 1, "op2": 1}, 7], JSON_PATCH, "not an object"),
    ([{"op": "replace", "path": "/status", "value": "x"}], FHIR_JSON, "Parameters"),
    (parameters({"name": "operation", "part": [{"name": "path", "valueString": "Observation"}]}),
     FHIR_JSON, "no type"),
    (b"", JSON_PATCH, "no body"),
])
def test_malformed_patches_are_400(srv, body, ctype, part):
    oid = create(srv)
    r = patch(srv, oid, body, ctype=ctype)
    assert r.status_code == 400, r.text[:400]
    assert part in issues(r)[0].get("diagnostics", "")
    assert read(srv, oid)["meta"]["versionId"] == "1"


@pytest.mark.parametrize("ctype", ["text/plain", "application/xml", "application/fhir+xml",
                                   "application/merge-patch+json", None])
def test_other_content_types_are_415(srv, ctype):
    oid = create(srv)
    r = patch(srv, oid, b'[{"op":"remove","path":"/note"}]', ctype=ctype)
    assert r.status_code == 415, r.text[:300]
    assert issues(r)[0]["code"] == "not-supported"


def test_unknown_and_deleted(srv):
    op = [{"op": "replace", "path": "/status", "value": "amended"}]
    r = patch(srv, f"nope{uuid.uuid4().hex[:8]}", op)
    assert r.status_code == 404, r.text[:300]
    oid = create(srv)
    assert call(srv, "DELETE", f"/fhir/Observation/{oid}").status_code == 204
    before = ledger_size(srv)
    r = patch(srv, oid, op)
    assert r.status_code == 410, r.text[:300]
    assert ledger_size(srv) == before


# ----------------------------------------------------------------------
# Who may patch what
# ----------------------------------------------------------------------

def test_a_patient_patches_only_their_own(srv):
    alice = new_token(srv, "patient", "Patient/alice")
    mine, theirs = create(srv, heart_rate("alice")), create(srv, heart_rate("bob"))
    op = [{"op": "replace", "path": "/status", "value": "amended"}]
    r = patch(srv, theirs, op, token=alice)
    assert r.status_code in (403, 404), r.text[:300]
    assert read(srv, theirs)["meta"]["versionId"] == "1"
    # nor may a patch move one's own record into another's compartment
    r = patch(srv, mine, [{"op": "replace", "path": "/subject/reference", "value": "Patient/bob"}],
              token=alice)
    assert r.status_code in (403, 404), r.text[:300]
    assert read(srv, mine)["subject"]["reference"] == "Patient/alice"
    r = patch(srv, mine, op, token=alice)
    assert r.status_code == 200, r.text[:300]
    assert read(srv, mine)["status"] == "amended"


def test_read_only_audit_events_cannot_be_patched(srv):
    events = call(srv, "GET", "/fhir/AuditEvent?_count=1").json().get("entry", [])
    if not events:
        pytest.skip("no AuditEvent was written yet")
    aid = events[0]["resource"]["id"]
    r = call(srv, "PATCH", f"/fhir/AuditEvent/{aid}",
             [{"op": "replace", "path": "/recorded", "value": "2000-01-01T00:00:00Z"}], JSON_PATCH)
    assert r.status_code == 405, r.text[:300]
