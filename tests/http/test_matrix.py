"""The access matrix (access_matrix.txt): every caller x interaction x
Consent state, over HTTP against the real binary, each with the answer the
table gives."""

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from requests.structures import CaseInsensitiveDict

import harness

TABLE = Path(__file__).with_name("access_matrix.txt")
STATES = ["none", "active", "future", "expired", "revoked", "deny-code", "other-actor",
          "other-class", "data-excluded"]
P, Q = "mp-target", "mq-other"
HR = "8867-4"


def load_table():
    rows = {}
    for n, line in enumerate(TABLE.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].split()
        if not line:
            continue
        caller, interaction, *values = line
        if len(values) == 1:
            values = values * len(STATES)
        assert len(values) == len(STATES), f"{TABLE.name}:{n}: {len(values)} values"
        rows[(caller, interaction)] = dict(zip(STATES, values))
    return rows


ROWS = load_table()


def observation(patient, value=72):
    return {"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": HR}]},
            "subject": {"reference": f"Patient/{patient}"},
            "effectiveDateTime": "2024-05-06T10:00:00Z",
            "valueQuantity": {"value": value, "unit": "/min", "system": "http://unitsofmeasure.org",
                              "code": "/min"}}


def consent_body(state):
    actor = "Organization/o2" if state == "other-actor" else "Organization/o1"
    provision = {
        "type": "permit",
        "actor": [{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                        "code": "PRCP"}]},
                   "reference": {"reference": actor}}],
        "action": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentaction", "code": c}]}
                   for c in ("access", "collect", "correct")],
        "class": [{"system": "http://hl7.org/fhir/resource-types",
                   "code": "Patient" if state == "other-class" else "Observation"}],
    }
    if state == "future":
        provision["period"] = {"start": "2099-01-01"}
    if state == "expired":
        provision["period"] = {"start": "2019-01-01", "end": "2020-01-01"}
    if state == "deny-code":
        provision["provision"] = [{"type": "deny",
                                   "code": [{"coding": [{"system": "http://loinc.org", "code": HR}]}]}]
    if state == "data-excluded":
        provision["dataPeriod"] = {"start": "2020-01-01", "end": "2020-12-31"}
    return {"resourceType": "Consent", "id": "cm",
            "status": "inactive" if state == "revoked" else "active",
            "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                                  "code": "patient-privacy"}]},
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
            "patient": {"reference": f"Patient/{P}"},
            "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                                       "code": "OPTIN"}]},
            "provision": provision}


class World:
    def __init__(self, server):
        self.server = server
        self.tokens = {"admin": server.admin_token}

    def call(self, method, path, caller="admin", body=None):
        h = CaseInsensitiveDict({"Accept": "application/fhir+json",
                                 "Authorization": f"Bearer {self.tokens[caller]}"})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/fhir+json"
        r = harness.http_exchange(method, self.server.base + path, h, data)
        assert not r.error, r.error
        return r

    def token(self, name, *args):
        p = subprocess.run([str(self.server.binary), "token", "create", "--data", str(self.server.root),
                            *args], capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        self.tokens[name] = p.stdout.strip()

    def fresh(self):
        r = self.call("POST", "/fhir/Observation", body=observation(P))
        assert r.status == 201
        return json.loads(r.body)["id"]

    def set_state(self, state):
        if state == "none":
            r = self.call("DELETE", "/fhir/Consent/cm")
            assert r.status in (204, 404)
        else:
            r = self.call("PUT", "/fhir/Consent/cm", body=consent_body(state))
            assert r.status in (200, 201), r.body


@pytest.fixture(scope="module")
def world(settings):
    root = Path(tempfile.mkdtemp(prefix="vitalog-matrix-"))
    with harness.serving(settings.binary, root) as server:
        server.root, server.binary = root, settings.binary
        yield seeded_world(server)
    shutil.rmtree(root, ignore_errors=True)


def seeded_world(server):
    """The two patients, every caller's token and Observation X."""
    w = World(server)
    for pid in (P, Q):
        assert w.call("PUT", f"/fhir/Patient/{pid}", body={"resourceType": "Patient", "id": pid}).status == 201
    w.token("clinic", "--role", "clinic", "--subject", "Organization/o1")
    w.token("practitioner", "--role", "clinic", "--subject", "Practitioner/d1",
            "--organization", "Organization/o1")
    w.token("clinic-o2", "--role", "clinic", "--subject", "Organization/o2")
    w.token("patient", "--role", "patient", "--subject", f"Patient/{P}")
    w.token("other-patient", "--role", "patient", "--subject", f"Patient/{Q}")
    w.token("device", "--role", "device", "--subject", f"Patient/{P}")
    w.token("auditor", "--role", "auditor", "--subject", "audit")
    w.x = w.fresh()
    return w


def listed(r, rid):
    if r.status != 200:
        return str(r.status)
    bundle = json.loads(r.body)
    return "+" if any(e.get("resource", {}).get("id") == rid for e in bundle.get("entry", [])) else "-"


def perform(w, caller, interaction):
    x = w.x
    if interaction == "read":
        return str(w.call("GET", f"/fhir/Observation/{x}", caller).status)
    if interaction == "vread":
        return str(w.call("GET", f"/fhir/Observation/{x}/_history/1", caller).status)
    if interaction == "search-patient":
        return listed(w.call("GET", f"/fhir/Observation?patient={P}&_count=1000", caller), x)
    if interaction == "search-all":
        return listed(w.call("GET", "/fhir/Observation?_count=1000", caller), x)
    if interaction == "history-instance":
        return str(w.call("GET", f"/fhir/Observation/{x}/_history", caller).status)
    if interaction == "history-type":
        return listed(w.call("GET", "/fhir/Observation/_history?_count=1000", caller), x)
    if interaction == "create":
        return str(w.call("POST", "/fhir/Observation", caller, observation(P)).status)
    if interaction == "update":
        y = w.fresh()
        body = dict(observation(P, value=99), id=y)
        return str(w.call("PUT", f"/fhir/Observation/{y}", caller, body).status)
    if interaction == "delete":
        y = w.fresh()
        return str(w.call("DELETE", f"/fhir/Observation/{y}", caller).status)
    if interaction == "bundle-read":
        r = w.call("POST", "/fhir", caller, {"resourceType": "Bundle", "type": "batch", "entry": [
            {"request": {"method": "GET", "url": f"Observation/{x}"}}]})
        if r.status != 200:
            return str(r.status)
        return json.loads(r.body)["entry"][0]["response"]["status"][:3]
    if interaction == "bundle-create":
        r = w.call("POST", "/fhir", caller, {"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": observation(P), "request": {"method": "POST", "url": "Observation"}}]})
        return str(r.status)
    if interaction == "ledger-record":
        return str(w.call("GET", f"/fhir/Observation/{x}/_history/1/$ledger", caller).status)
    if interaction == "ledger-export":
        return str(w.call("GET", "/ledger/export", caller).status)
    raise AssertionError(f"unknown interaction {interaction}")


@pytest.mark.parametrize("state", STATES)
def test_access_matrix(world, state):
    world.set_state(state)
    wrong = []
    for (caller, interaction), expect in ROWS.items():
        got = perform(world, caller, interaction)
        if got != expect[state]:
            wrong.append(f"{caller} {interaction}: expected {expect[state]}, got {got}")
    assert not wrong, f"state {state}:\n  " + "\n  ".join(wrong)
