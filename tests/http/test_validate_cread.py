"""Conditional read (R4 http.html#cread; RFC 9110 13.1.2 If-None-Match,
13.1.3 If-Modified-Since) and POST /fhir/Observation/$validate (R4
operation-resource-validate.html) against the real binary.

Last-Modified has one-second resolution: the If-Modified-Since tests use
the Last-Modified value the server sent, and one second before it; nothing
here depends on the wall clock.

Every test states in its assertion message what the server should have
done; a failing assertion is a deviation of the server, not of the test.
"""

import json
import re
import shutil
import subprocess
import tempfile
import uuid
from email.utils import format_datetime, parsedate_to_datetime
from datetime import timedelta
from pathlib import Path

import pytest
from requests.structures import CaseInsensitiveDict

import harness

LOINC = "http://loinc.org"
VITALS = "http://terminology.hl7.org/CodeSystem/observation-category"


@pytest.fixture(scope="module")
def srv(settings):
    root = Path(tempfile.mkdtemp(prefix="vitalog-cread-"))
    with harness.serving(settings.binary, root) as server:
        server.root, server.binary = root, settings.binary
        yield server
    shutil.rmtree(root, ignore_errors=True)


def call(server, method, path, token=None, body=None, headers=None, raw=None, ctype="application/fhir+json"):
    h = CaseInsensitiveDict({"Accept": "application/fhir+json"})
    if token != "":
        h["Authorization"] = f"Bearer {token or server.admin_token}"
    h.update(headers or {})
    data = raw
    if body is not None:
        data = json.dumps(body).encode()
    if data is not None:
        h["Content-Type"] = ctype
    r = harness.http_exchange(method, server.base + path, h, data)
    assert not r.error, f"{method} {path}: {r.error}"
    return r


def new_token(server, role, subject):
    p = subprocess.run([str(server.binary), "token", "create", "--data", str(server.root), "--role", role,
                        "--subject", subject], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def heart_rate(patient, status="final"):
    """A heart rate that meets the R4 vital-signs profiles."""
    return {"resourceType": "Observation", "status": status,
            "meta": {"profile": ["http://hl7.org/fhir/StructureDefinition/heartrate"]},
            "category": [{"coding": [{"system": VITALS, "code": "vital-signs"}]}],
            "code": {"coding": [{"system": LOINC, "code": "8867-4", "display": "Heart rate"}]},
            "subject": {"reference": f"Patient/{patient}"},
            "effectiveDateTime": "2024-05-06T10:00:00Z",
            "valueQuantity": {"value": 72, "unit": "beats/minute", "system": "http://unitsofmeasure.org",
                              "code": "/min"}}


# ----------------------------------------------------------------------
# Conditional read
# ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def obs(srv):
    """An Observation at version 1: (path, ETag, Last-Modified)."""
    pid = f"cr{uuid.uuid4().hex[:8]}"
    assert call(srv, "PUT", f"/fhir/Patient/{pid}", body={"resourceType": "Patient", "id": pid}).status == 201
    r = call(srv, "POST", "/fhir/Observation", body=heart_rate(pid))
    assert r.status == 201, r.text[:400]
    oid = json.loads(r.body)["id"]
    return {"path": f"/fhir/Observation/{oid}", "patient": pid, "body": json.loads(r.body)}


def read(srv, path, token=None, **headers):
    return call(srv, "GET", path, token, headers=headers)


def not_modified(r, etag, why):
    assert r.status == 304, f"{why}: expected 304 Not Modified, got {r.status}: {r.text[:300]}"
    assert r.body == b"", f"{why}: a 304 has no body: {r.body[:200]!r}"
    assert r.header("ETag") == etag, f"{why}: a 304 carries the ETag {etag}: {r.header('ETag')}"


def served(r, version, why):
    assert r.status == 200, f"{why}: expected 200, got {r.status}: {r.text[:300]}"
    assert json.loads(r.body)["meta"]["versionId"] == str(version), f"{why}: version {version} in the body"
    assert r.header("ETag") == f'W/"{version}"', r.header("ETag")


def test_if_none_match(srv, obs):
    path = obs["path"]
    first = read(srv, path)
    served(first, 1, "a plain read")
    etag = first.header("ETag")
    assert etag == 'W/"1"' and first.header("Last-Modified"), first.headers
    not_modified(read(srv, path, **{"If-None-Match": 'W/"1"'}), 'W/"1"', 'If-None-Match: W/"1" (current)')
    not_modified(read(srv, path, **{"If-None-Match": '"1"'}), 'W/"1"',
                 'If-None-Match: "1" (weak comparison, RFC 9110 13.1.2)')
    not_modified(read(srv, path, **{"If-None-Match": '*'}), 'W/"1"', "If-None-Match: *")
    not_modified(read(srv, path, **{"If-None-Match": 'W/"7", W/"1"'}), 'W/"1"', "a list that names the version")
    served(read(srv, path, **{"If-None-Match": 'W/"0"'}), 1, 'If-None-Match: W/"0"')
    served(read(srv, path, **{"If-None-Match": 'W/"2"'}), 1, 'If-None-Match: W/"2" (not yet)')
    # a new version: the old ETag no longer matches
    body = dict(obs["body"], meta={"profile": obs["body"]["meta"]["profile"]})
    body["valueQuantity"] = dict(body["valueQuantity"], value=75)
    assert call(srv, "PUT", path, body=body).status == 200
    served(read(srv, path, **{"If-None-Match": 'W/"1"'}), 2, 'If-None-Match: W/"1" (an older version)')
    not_modified(read(srv, path, **{"If-None-Match": 'W/"2"'}), 'W/"2"', 'If-None-Match: W/"2" (current)')


def test_if_modified_since(srv, obs):
    path = obs["path"]
    r = read(srv, path)
    assert r.status == 200
    etag, modified = r.header("ETag"), r.header("Last-Modified")
    when = parsedate_to_datetime(modified)
    assert when.microsecond == 0 and format_datetime(when, usegmt=True) == modified, \
        f"Last-Modified is an IMF-fixdate: {modified}"
    not_modified(read(srv, path, **{"If-Modified-Since": modified}), etag, "If-Modified-Since: its Last-Modified")
    before = format_datetime(when - timedelta(seconds=1), usegmt=True)
    r = read(srv, path, **{"If-Modified-Since": before})
    assert r.status == 200 and json.loads(r.body)["id"] == path.rsplit("/", 1)[1], \
        f"If-Modified-Since one second before Last-Modified: 200, got {r.status}"
    long_before = format_datetime(when - timedelta(days=400), usegmt=True)
    assert read(srv, path, **{"If-Modified-Since": long_before}).status == 200
    assert read(srv, path, **{"If-Modified-Since": "not a date"}).status == 200, \
        "an If-Modified-Since that is not an HTTP-date is ignored (RFC 9110 13.1.3)"


def test_if_none_match_decides_over_if_modified_since(srv, obs):
    path = obs["path"]
    r = read(srv, path)
    etag, modified = r.header("ETag"), r.header("Last-Modified")
    assert re.fullmatch(r'W/"[0-9]+"', etag), etag
    before = format_datetime(parsedate_to_datetime(modified) - timedelta(days=1), usegmt=True)
    r = read(srv, path, **{"If-None-Match": 'W/"0"', "If-Modified-Since": modified})
    assert r.status == 200, ("If-None-Match that does not match decides (RFC 9110 13.2.2): 200, although "
                             f"If-Modified-Since alone would be 304; got {r.status}")
    not_modified(read(srv, path, **{"If-None-Match": etag, "If-Modified-Since": before}), etag,
                 "If-None-Match that matches decides, although If-Modified-Since alone would be 200")


def test_conditional_read_discloses_nothing(srv, obs):
    path = obs["path"]
    etag = read(srv, path).header("ETag")
    stranger = new_token(srv, "clinic", f"Organization/cr{uuid.uuid4().hex[:6]}")
    for headers in ({"If-None-Match": etag}, {"If-None-Match": "*"},
                    {"If-Modified-Since": read(srv, path).header("Last-Modified")}):
        r = read(srv, path, stranger, **headers)
        assert r.status == 404, (f"a clinic without a Consent gets 404 (as without {list(headers)}), never a 304 "
                                 f"that would confirm the version: {r.status}")
    own = new_token(srv, "patient", f"Patient/{obs['patient']}")
    not_modified(read(srv, path, own, **{"If-None-Match": etag}), etag, "the patient's own conditional read")


def test_conditional_read_of_a_deleted_resource(srv):
    pid = f"cd{uuid.uuid4().hex[:8]}"
    r = call(srv, "POST", "/fhir/Observation", body=heart_rate(pid))
    path = f"/fhir/Observation/{json.loads(r.body)['id']}"
    modified = r.header("Last-Modified")
    assert call(srv, "DELETE", path).status == 204
    for headers in ({"If-None-Match": 'W/"1"'}, {"If-None-Match": 'W/"2"'}, {"If-None-Match": "*"},
                    {"If-Modified-Since": modified}):
        r = read(srv, path, **headers)
        assert r.status == 410, f"a deleted resource is 410 with {headers}, not 304: {r.status}"


# ----------------------------------------------------------------------
# $validate
# ----------------------------------------------------------------------


def ledger_size(srv):
    r = call(srv, "GET", "/ledger/checkpoint")
    assert r.status == 200, r.text[:200]
    return int(r.text.split("\n")[1])


def observation_count(srv):
    r = call(srv, "GET", "/fhir/Observation?_summary=count")
    assert r.status == 200, r.text[:200]
    return json.loads(r.body)["total"]


def validate(srv, body=None, token=None, query="", raw=None, ctype="application/fhir+json"):
    return call(srv, "POST", f"/fhir/Observation/$validate{query}", token, body=body, raw=raw, ctype=ctype)


def outcome(r, why):
    """A 200 OperationOutcome: (error issues, all issues)."""
    assert r.status == 200, f"{why}: $validate answers 200 when it could validate; got {r.status}: {r.text[:400]}"
    oo = json.loads(r.body)
    assert oo.get("resourceType") == "OperationOutcome", f"{why}: {r.text[:300]}"
    issues = oo.get("issue", [])
    assert issues, f"{why}: an OperationOutcome has at least one issue"
    return [i for i in issues if i.get("severity") in ("error", "fatal")], issues


def names(issues, element):
    """Whether an issue's expression names the element (Observation.status,
    Observation.code, ...)."""
    pattern = re.compile(rf"(^|\.){re.escape(element)}(\[[0-9]+\])?$")
    return any(pattern.search(e) for i in issues for e in i.get("expression", []))


def bogus_status(pid):
    return heart_rate(pid, status="bogus")


def no_code(pid):
    o = heart_rate(pid)
    del o["code"]
    return o


def as_parameters(resource, **more):
    params = [{"name": "resource", "resource": resource}]
    params += [{"name": k, "valueCode": v} for k, v in more.items()]
    return {"resourceType": "Parameters", "parameter": params}


@pytest.mark.parametrize("wrap", [False, True], ids=["body", "parameters"])
def test_validate_answers_an_outcome(srv, wrap):
    pid = f"va{uuid.uuid4().hex[:8]}"

    def send(res):
        return validate(srv, as_parameters(res) if wrap else res)

    errors, issues = outcome(send(heart_rate(pid)), "a valid vital-signs Observation")
    assert errors == [], f"a valid vital-signs Observation: no error issue: {issues}"
    errors, _ = outcome(send(bogus_status(pid)), 'status "bogus"')
    assert errors and names(errors, "status"), \
        f'status "bogus": an error issue whose expression names Observation.status: {errors}'
    errors, _ = outcome(send(no_code(pid)), "no code")
    assert errors and names(errors, "code"), \
        f"no code: an error issue whose expression names Observation.code: {errors}"
    wrong_unit = heart_rate(pid)
    wrong_unit["valueQuantity"] = {"value": 72, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}
    errors, _ = outcome(send(wrong_unit), "a heart rate in kg (the heartrate profile wants /min)")
    assert errors, f"a heart rate in kg breaks the R4 heartrate profile: an error issue: {errors}"
    # what a create would refuse, $validate reports
    r = call(srv, "POST", "/fhir/Observation", body=bogus_status(pid))
    assert r.status in (400, 422), f"the same resource as a create is refused: {r.status}"


def test_validate_stores_nothing(srv):
    pid = f"vn{uuid.uuid4().hex[:8]}"
    assert call(srv, "PUT", f"/fhir/Patient/{pid}", body={"resourceType": "Patient", "id": pid}).status == 201
    before = (ledger_size(srv), observation_count(srv))
    with_id = dict(heart_rate(pid), id=f"vn{uuid.uuid4().hex[:8]}")
    for body in (heart_rate(pid), bogus_status(pid), as_parameters(heart_rate(pid)), with_id,
                 as_parameters(with_id, mode="update")):
        r = validate(srv, body)
        assert r.status == 200, r.text[:300]
    assert (ledger_size(srv), observation_count(srv)) == before, \
        "$validate stores nothing: the ledger size and the Observation count are unchanged"
    assert call(srv, "GET", f"/fhir/Observation/{with_id['id']}").status == 404, \
        "$validate of a resource with an id does not create it"


REFUSALS = {
    "a Patient sent to Observation/$validate": dict(body={"resourceType": "Patient", "id": "x"}),
    "a Parameters body whose resource is a Patient": dict(body=as_parameters({"resourceType": "Patient"})),
    "a body that is not JSON": dict(raw=b"this is not JSON"),
    "truncated JSON": dict(raw=b'{"resourceType":"Observation",'),
    "a JSON array": dict(raw=b"[]"),
    "mode=delete": dict(body=heart_rate("vr1"), query="?mode=delete"),
    "mode delete in Parameters": dict(body=as_parameters(heart_rate("vr1"), mode="delete")),
    "Parameters without a resource": dict(body={"resourceType": "Parameters", "parameter": []}),
}


@pytest.mark.parametrize("why", list(REFUSALS))
def test_validate_refusals(srv, why):
    """R4 Resource-validate: 4xx when the validation itself cannot be
    performed (not FHIR JSON, another type than the URL's, a mode the
    server does not do at this level)."""
    before = ledger_size(srv)
    r = validate(srv, **REFUSALS[why])
    assert r.status == 400, f"{why}: expected 400, got {r.status}: {r.text[:300]}"
    assert json.loads(r.body).get("resourceType") == "OperationOutcome", r.text[:300]
    assert ledger_size(srv) == before


def test_who_may_validate(srv):
    pid = f"vw{uuid.uuid4().hex[:8]}"
    patient = new_token(srv, "patient", f"Patient/{pid}")
    errors, _ = outcome(validate(srv, heart_rate(pid), token=patient), "a patient token validates")
    assert errors == []
    auditor = new_token(srv, "auditor", f"auditor-{pid}")
    r = validate(srv, heart_rate(pid), token=auditor)
    assert r.status == 403, f"an auditor may not validate (auditors never see PHI): {r.status}: {r.text[:300]}"
    assert json.loads(r.body).get("resourceType") == "OperationOutcome"
    r = validate(srv, heart_rate(pid), token="")
    assert r.status == 401, f"no credentials: 401, got {r.status}"
