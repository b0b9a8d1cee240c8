"""POST /fhir/Observation/$ingest against the real binary (docs/ingest.md):
the batch-response Bundle, once-and-only-once, streamed NDJSON beyond the
body limit, who may ingest for whom, per-reading rejections, Devices,
the ledger, and `vitalog import healthkit` both ways."""

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import requests

import harness

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data" / "ingest"
OUTCOME = "http://vitalog.local/fhir/StructureDefinition/ingest-outcome"
TOTALS = "http://vitalog.local/fhir/StructureDefinition/ingest-totals"
SOURCE_EXT = "http://vitalog.local/fhir/StructureDefinition/ingest-source-quantity"


@pytest.fixture(scope="module")
def srv(settings):
    root = Path(tempfile.mkdtemp(prefix="vitalog-ingest-"))
    with harness.serving(settings.binary, root) as server:
        server.root = root
        server.binary = settings.binary
        for pid in ("alice", "bob", "zoned"):
            body = {"resourceType": "Patient", "id": pid}
            if pid == "zoned":
                body["extension"] = [{"url": "http://hl7.org/fhir/StructureDefinition/timezone",
                                      "valueCode": "America/New_York"}]
            assert put(server, f"/fhir/Patient/{pid}", body).status_code in (200, 201)
        yield server
    shutil.rmtree(root, ignore_errors=True)


def auth(server, token=None):
    return {"Authorization": f"Bearer {token or server.admin_token}",
            "Accept": "application/fhir+json"}


def put(server, path, body, token=None):
    return requests.put(server.base + path, data=json.dumps(body),
                        headers={**auth(server, token), "Content-Type": "application/fhir+json"},
                        timeout=60)


def get(server, path, token=None):
    r = requests.get(server.base + path, headers=auth(server, token), timeout=60)
    assert r.status_code == 200, r.text[:400]
    return r.json()


def ingest(server, fmt, body, patient="Patient/alice", token=None, ctype="application/json",
           extra=""):
    q = f"format={fmt}" + (f"&patient={patient}" if patient else "") + extra
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    return requests.post(f"{server.base}/fhir/Observation/$ingest?{q}", data=body,
                         headers={**auth(server, token), "Content-Type": ctype}, timeout=300)


def totals(bundle):
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "batch-response"
    ext = [e for e in bundle["meta"]["extension"] if e["url"] == TOTALS][0]
    return {e["url"]: e["valueUnsignedInt"] for e in ext["extension"]}


def outcomes(bundle):
    return [[e for e in x["extension"] if e["url"] == OUTCOME][0]["valueCode"]
            for x in bundle.get("entry", [])]


def new_token(server, role, subject):
    p = subprocess.run([str(server.binary), "token", "create", "--role", role, "--subject",
                        subject, "--data", str(server.root)], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def ledger_size(server):
    r = requests.get(server.base + "/ledger/checkpoint", headers=auth(server), timeout=60)
    assert r.status_code == 200, r.text[:200]
    return int(r.text.splitlines()[1])


def withings_group(grpid, date, weight_g):
    return {"status": 0, "body": {"updatetime": date, "measuregrps": [
        {"grpid": grpid, "attrib": 0, "date": date, "category": 1,
         "measures": [{"value": weight_g, "type": 1, "unit": -3}]}]}}


def test_withings_once_and_only_once(srv):
    doc = (DATA / "vendors" / "withings" / "withings-body-measures.json").read_bytes()
    before = ledger_size(srv)
    r = ingest(srv, "withings", doc)
    assert r.status_code == 200, r.text[:400]
    b = r.json()
    t = totals(b)
    assert t == {"readings": 11, "created": 8, "updated": 0, "unchanged": 0, "rejected": 3}
    assert len(b["entry"]) == 11
    # every stored reading is anchored: one ledger entry each
    assert ledger_size(srv) == before + 8
    created = [e for e in b["entry"] if outcomes({"entry": [e]}) == ["created"]]
    assert all(e["response"]["status"] == "201 Created" for e in created)
    assert all(e["response"]["location"].startswith("Observation/") for e in created)
    rejected = [e for e in b["entry"] if outcomes({"entry": [e]}) == ["rejected"]]
    for e in rejected:
        issue = e["response"]["outcome"]["issue"][0]
        assert "type 18" in issue["diagnostics"] and issue["expression"][0].startswith("/body/")
    # the same payload again: nothing new, nothing in the ledger
    again = ingest(srv, "withings", doc).json()
    assert totals(again)["unchanged"] == 8 and totals(again)["created"] == 0
    assert ledger_size(srv) == before + 8
    assert [e.get("fullUrl") for e in again["entry"]] == [e.get("fullUrl") for e in b["entry"]]
    # the readings are searchable, in canonical units, with the source kept
    s = get(srv, "/fhir/Observation?patient=Patient/alice&code=http://loinc.org|29463-7"
                 "&value-quantity=74.128|http://unitsofmeasure.org|kg")
    assert s["total"] == 1
    o = s["entry"][0]["resource"]
    assert o["valueQuantity"] == {"value": 74.128, "unit": "kg",
                                  "system": "http://unitsofmeasure.org", "code": "kg"}
    assert o["meta"]["source"].endswith("/withings")
    assert o["subject"] == {"reference": "Patient/alice"}
    assert o["category"][0]["coding"][0]["code"] == "vital-signs"
    assert o["effectiveDateTime"].startswith("2015-04-20T17:13:56")


def test_changed_value_is_a_new_version(srv):
    first = ingest(srv, "withings", withings_group(9001, 1700000000, 70000)).json()
    assert outcomes(first) == ["created"]
    loc = first["entry"][0]["response"]["location"]
    changed = ingest(srv, "withings", withings_group(9001, 1700000000, 70500)).json()
    assert outcomes(changed) == ["updated"]
    assert changed["entry"][0]["response"]["status"] == "200 OK"
    assert changed["entry"][0]["response"]["location"].endswith("/_history/2")
    assert changed["entry"][0]["fullUrl"] == first["entry"][0]["fullUrl"]
    oid = loc.split("/")[1]
    cur = get(srv, f"/fhir/Observation/{oid}")
    assert cur["valueQuantity"]["value"] == 70.5 and cur["meta"]["versionId"] == "2"
    assert get(srv, f"/fhir/Observation/{oid}/_history/1")["valueQuantity"]["value"] == 70
    # a deleted reading sent again stays deleted
    assert requests.delete(f"{srv.base}/fhir/Observation/{oid}", headers=auth(srv),
                           timeout=60).status_code == 204
    again = ingest(srv, "withings", withings_group(9001, 1700000000, 70500)).json()
    assert outcomes(again) == ["unchanged"]
    assert again["entry"][0]["response"] == {"status": "410 Gone"}
    assert requests.get(f"{srv.base}/fhir/Observation/{oid}", headers=auth(srv),
                        timeout=60).status_code == 410


def test_ndjson_streams_beyond_the_body_limit(srv):
    # about 3 MiB: three times the default body limit of other routes
    lines = [json.dumps(withings_group(100000 + i, 1600000000 + 60 * i, 60000 + i % 900))
             for i in range(20000)]
    payload = ("\n".join(lines) + "\n").encode()
    assert len(payload) > 3 * 1024 * 1024

    def chunks():
        for k in range(0, len(payload), 65536):
            yield payload[k:k + 65536]

    r = requests.post(f"{srv.base}/fhir/Observation/$ingest?format=withings&patient=Patient/bob",
                      data=chunks(), headers={**auth(srv), "Content-Type": "application/x-ndjson"},
                      timeout=600)
    assert r.status_code == 200, r.text[:400]
    b = r.json()
    assert totals(b) == {"readings": 20000, "created": 20000, "updated": 0, "unchanged": 0,
                         "rejected": 0}
    assert len(b["entry"]) == 20000
    s = get(srv, "/fhir/Observation?patient=Patient/bob&_summary=count")
    assert s["total"] == 20000
    # and the ledger of it all verifies offline (the server keeps running)
    v = subprocess.run([str(srv.binary), "verify", "--data", str(srv.root)], capture_output=True,
                       text=True, timeout=300)
    assert v.returncode == 0, v.stderr


def test_bad_lines_are_rejected_alone(srv):
    body = (json.dumps(withings_group(7001, 1650000000, 80000)) + "\n"
            + "{not json\n"
            + "\n"  # blank lines are no documents
            + json.dumps({"status": 0, "body": {"measuregrps": [
                {"grpid": 7002, "attrib": 0, "date": 1650000100, "category": 1,
                 "measures": [{"value": 9000, "type": 1, "unit": 0}]}]}}) + "\n"  # 9 t
            + json.dumps(withings_group(7003, 4102444800, 80000)) + "\n")  # the year 2100
    b = ingest(srv, "withings", body.encode(), ctype="application/x-ndjson").json()
    assert outcomes(b) == ["created", "rejected", "rejected", "rejected"]
    diag = [e["response"].get("outcome", {}).get("issue", [{}])[0].get("diagnostics", "")
            for e in b["entry"]]
    assert "line 2" in diag[1] and "JSON" in diag[1]
    assert "plausible" in diag[2] and "line 4" in diag[2]
    assert "future" in diag[3]


def test_who_may_ingest(srv):
    doc = withings_group(5001, 1690000000, 65000)
    # no credentials: 401 before the body matters
    r = requests.post(f"{srv.base}/fhir/Observation/$ingest?format=withings&patient=Patient/alice",
                      data=b"whatever", headers={"Content-Type": "application/json"}, timeout=60)
    assert r.status_code == 401 and r.json()["resourceType"] == "OperationOutcome"
    # a device token implies its patient, and only that one
    dev = new_token(srv, "device", "Patient/bob")
    b = ingest(srv, "withings", doc, patient=None, token=dev).json()
    assert outcomes(b) == ["created"]
    oid = b["entry"][0]["response"]["location"].split("/")[1]
    assert get(srv, f"/fhir/Observation/{oid}")["subject"] == {"reference": "Patient/bob"}
    r = ingest(srv, "withings", doc, patient="Patient/alice", token=dev)
    assert r.status_code == 403
    # a patient token: the patient's own readings
    pat = new_token(srv, "patient", "Patient/alice")
    assert outcomes(ingest(srv, "withings", doc, patient=None, token=pat).json()) == ["created"]
    # a clinic without a collect Consent
    clinic = new_token(srv, "clinic", "Organization/nowhere")
    assert ingest(srv, "withings", doc, token=clinic).status_code == 403
    # an auditor never writes
    aud = new_token(srv, "auditor", "audit")
    assert ingest(srv, "withings", doc, token=aud).status_code == 403


@pytest.mark.parametrize("query,ctype,status", [
    ("format=nope&patient=Patient/alice", "application/json", 400),
    ("patient=Patient/alice", "application/json", 400),
    ("format=withings", "application/json", 400),
    ("format=withings&patient=Patient/nobody", "application/json", 404),
    ("format=withings&patient=Patient/alice", "text/plain", 415),
])
def test_refusals(srv, query, ctype, status):
    r = requests.post(f"{srv.base}/fhir/Observation/$ingest?{query}", data=b"{}",
                      headers={**auth(srv), "Content-Type": ctype}, timeout=60)
    assert r.status_code == status, r.text[:300]
    assert r.json()["resourceType"] == "OperationOutcome"


def test_not_a_document_of_the_format(srv):
    r = ingest(srv, "withings", {"hello": "world"})
    assert r.status_code == 200
    b = r.json()
    assert outcomes(b) == ["rejected"] and totals(b)["rejected"] == 1


def test_local_times_need_a_zone(srv):
    doc = (DATA / "vendors" / "fitbit" / "fitbit-activities-heart-1d-1m-intraday.json").read_bytes()
    none = ingest(srv, "fitbit", doc).json()
    assert totals(none)["created"] == 0 and totals(none)["rejected"] == totals(none)["readings"] > 0
    assert "tz" in none["entry"][0]["response"]["outcome"]["issue"][0]["diagnostics"]
    given = ingest(srv, "fitbit", doc, extra="&tz=Europe/Berlin").json()
    assert totals(given)["rejected"] == 0 and totals(given)["created"] == totals(none)["readings"]
    first = get(srv, "/fhir/" + given["entry"][0]["response"]["location"].rsplit("/_history", 1)[0])
    assert first["effectiveDateTime"].endswith("+02:00")  # August in Berlin
    # the patient's own zone (the timezone extension) when no tz is given
    zoned = ingest(srv, "fitbit", doc, patient="Patient/zoned").json()
    assert totals(zoned)["rejected"] == 0
    o = get(srv, "/fhir/" + zoned["entry"][0]["response"]["location"].rsplit("/_history", 1)[0])
    assert o["effectiveDateTime"].endswith("-04:00")  # August in New York


def test_capability_statement_lists_ingest(srv):
    cap = requests.get(srv.base + "/fhir/metadata", timeout=60).json()
    obs = [r for r in cap["rest"][0]["resource"] if r["type"] == "Observation"][0]
    assert "ingest" in [o["name"] for o in obs["operation"]]
    pat = [r for r in cap["rest"][0]["resource"] if r["type"] == "Patient"][0]
    assert "ingest" not in [o["name"] for o in pat.get("operation", [])]


def test_dexcom_high_low_and_devices(srv):
    doc = (DATA / "dexcom" / "egvs.json").read_bytes()
    b = ingest(srv, "dexcom", doc).json()
    t = totals(b)
    assert t["created"] == 9 and t["rejected"] == 1
    obs = [get(srv, "/fhir/" + e["response"]["location"].rsplit("/_history", 1)[0])
           for e in b["entry"] if "location" in e["response"]]
    codes = {o["code"]["coding"][0]["code"] for o in obs}
    assert codes <= {"99504-3", "105272-9"}
    assert all(o["category"][0]["coding"][0]["code"] == "laboratory" for o in obs)
    beyond = [o for o in obs if "interpretation" in o]
    assert {o["interpretation"][0]["coding"][0]["code"] for o in beyond} == {"H", "L"}
    for o in beyond:  # no number for a reading beyond the sensor's range (HL7 CGM IG)
        assert "valueQuantity" not in o and "dataAbsentReason" in o
    # each reading refers to its transmitter's Device, written once
    devices = {o["device"]["reference"] for o in obs}
    assert devices and all(d.startswith("Device/") for d in devices)
    before = {d: get(srv, "/fhir/" + d)["meta"]["versionId"] for d in devices}
    ingest(srv, "dexcom", doc)
    assert {d: get(srv, "/fhir/" + d)["meta"]["versionId"] for d in devices} == before
    dev = get(srv, "/fhir/" + sorted(devices)[0])
    assert dev["manufacturer"] == "Dexcom" and dev["patient"] == {"reference": "Patient/alice"}


def test_import_healthkit_both_ways(settings, tmp_path):
    export = DATA / "healthkit" / "apple-export6s3sample.xml"
    root = tmp_path / "data"
    root.mkdir()
    with harness.serving(settings.binary, root) as server:
        assert put(server, "/fhir/Patient/p9", {"resourceType": "Patient", "id": "p9"}).status_code == 201
        tok = tmp_path / "token"
        tok.write_text(server.admin_token + "\n")
        p = subprocess.run([str(settings.binary), "import", "healthkit", "--patient", "Patient/p9",
                            "--server", server.base, "--token", f"@{tok}", str(export)],
                           capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr
        assert "created 10," in p.stdout and "rejected 5" in p.stdout, p.stdout
        # the directory is in use: --data refuses, and says why
        q = subprocess.run([str(settings.binary), "import", "healthkit", "--patient", "Patient/p9",
                            "--data", str(root), str(export)], capture_output=True, text=True,
                           timeout=300)
        assert q.returncode == 1 and "running vitalog server" in q.stderr
    # the server stopped: --data writes the same readings, so nothing changes
    p = subprocess.run([str(settings.binary), "import", "healthkit", "--patient", "Patient/p9",
                        "--data", str(root), str(export)], capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr
    assert "created 0," in p.stdout and "unchanged 10," in p.stdout, p.stdout
    v = subprocess.run([str(settings.binary), "verify", "--data", str(root)], capture_output=True,
                       text=True, timeout=300)
    assert v.returncode == 0, v.stderr
    bad = subprocess.run([str(settings.binary), "import", "healthkit", "--patient", "Patient/p9",
                          "--data", str(root), str(tmp_path / "missing.xml")],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1
    usage = subprocess.run([str(settings.binary), "import", "healthkit", str(export)],
                           capture_output=True, text=True, timeout=60)
    assert usage.returncode == 2 and "usage" in usage.stderr


def test_json_bodies_are_bounded(srv):
    r = requests.post(f"{srv.base}/fhir/Observation/$ingest?format=withings&patient=Patient/alice",
                      data=b"", headers={**auth(srv), "Content-Type": "application/json"}, timeout=60)
    assert r.status_code == 400 and r.json()["resourceType"] == "OperationOutcome"
    big = b'{"status":0,"body":{"measuregrps":[' + b" " * (17 << 20) + b"]}}"
    r = requests.post(f"{srv.base}/fhir/Observation/$ingest?format=withings&patient=Patient/alice",
                      data=big, headers={**auth(srv), "Content-Type": "application/json"}, timeout=120)
    assert r.status_code == 413 and "NDJSON" in r.json()["issue"][0]["diagnostics"]
