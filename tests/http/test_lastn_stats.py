"""Observation/$lastn and Observation/$stats against the real binary, written
from the R4 OperationDefinitions Observation-lastn and Observation-stats and
vitalog's documented choices (docs/api.md; src/fhir/stats.c design notes):

$lastn   groups are (patient, coding of Observation.code); each gives its
         `max` newest by the end of effective[x], then the later written
         version first; entries by patient, code, newest first, each
         Observation once; consent filters like a search.
$stats   statistics per code (and per component of a panel) over the values
         in canonical units, in a Parameters resource of `statistics`
         Observations with one component per statistic; every statistic is
         checked against Python's `statistics` module on the same data."""

import json
import math
import shutil
import statistics
import subprocess
import tempfile
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests

import harness

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
STATS = "http://terminology.hl7.org/CodeSystem/observation-statistics"
LB = 0.45359237  # kg per [lb_av] (UCUM)

WEIGHT, HEART, TEMP, GLUCOSE = "29463-7", "8867-4", "8310-5", "2339-0"
BP, SYS, DIA = "85354-9", "8480-6", "8462-4"


# ----------------------------------------------------------------------
# The server and its requests
# ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def srv(settings):
    root = Path(tempfile.mkdtemp(prefix="vitalog-lastn-stats-"))
    with harness.serving(settings.binary, root) as server:
        server.root = root
        server.binary = settings.binary
        yield server
    shutil.rmtree(root, ignore_errors=True)


def headers(server, token=None, ctype="application/fhir+json"):
    h = {"Authorization": f"Bearer {token or server.admin_token}", "Accept": "application/fhir+json"}
    if ctype:
        h["Content-Type"] = ctype
    return h


def put(server, path, body, token=None):
    r = requests.put(server.base + path, data=json.dumps(body), headers=headers(server, token),
                     timeout=60)
    assert r.status_code in (200, 201), r.text[:500]
    return r.json()


def post(server, body, token=None):
    r = requests.post(server.base + "/fhir/Observation", data=json.dumps(body),
                      headers=headers(server, token), timeout=60)
    assert r.status_code == 201, r.text[:500]
    return r.json()["id"]


def delete(server, path):
    r = requests.delete(server.base + path, headers=headers(server), timeout=60)
    assert r.status_code in (200, 204), r.text[:500]


def op(server, name, params, token=None, expect=200):
    """GET /fhir/Observation/$name with params (a list of pairs)."""
    r = requests.get(f"{server.base}/fhir/Observation/${name}", params=params,
                     headers=headers(server, token, None), timeout=60)
    assert r.status_code == expect, f"{r.status_code}: {r.text[:800]}"
    return r.json()


def new_token(server, role, subject):
    p = subprocess.run([str(server.binary), "token", "create", "--role", role, "--subject", subject,
                        "--data", str(server.root)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def new_patient(server, prefix):
    pid = f"{prefix}{uuid.uuid4().hex[:8]}"
    put(server, f"/fhir/Patient/{pid}", {"resourceType": "Patient", "id": pid})
    return pid


def day(n, hour=8):
    """An instant of January 2024 (day n, hour h)."""
    return (datetime(2024, 1, 1, tzinfo=timezone.utc) + timedelta(days=n - 1, hours=hour)).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def observation(patient, code, when, value=None, unit=None, system=LOINC, codings=None,
                category="vital-signs", **extra):
    o = {"resourceType": "Observation", "status": "final",
         "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                   "code": category}]}],
         "code": {"coding": codings or [{"system": system, "code": code}]},
         "subject": {"reference": f"Patient/{patient}"}}
    if when:
        o["effectiveDateTime"] = when
    if value is not None:
        o["valueQuantity"] = {"value": value, "unit": unit, "system": UCUM, "code": unit}
    o.update(extra)
    return o


def bp_panel(patient, when, systolic, diastolic):
    def comp(code, v):
        return {"code": {"coding": [{"system": LOINC, "code": code}]},
                "valueQuantity": {"value": v, "unit": "mm[Hg]", "system": UCUM, "code": "mm[Hg]"}}
    o = observation(patient, BP, when)
    o["component"] = [comp(SYS, systolic), comp(DIA, diastolic)]
    return o


def consent(cid, patient, actor, codes=None):
    prov = {"type": "permit",
            "actor": [{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                            "code": "PRCP"}]},
                       "reference": {"reference": actor}}],
            "action": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentaction",
                                    "code": "access"}]}],
            "class": [{"system": "http://hl7.org/fhir/resource-types", "code": "Observation"}]}
    if codes:
        prov["code"] = [{"coding": [{"system": LOINC, "code": c}]} for c in codes]
    return {"resourceType": "Consent", "id": cid, "status": "active",
            "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                                  "code": "patient-privacy"}]},
            "category": [{"coding": [{"system": LOINC, "code": "59284-0"}]}],
            "patient": {"reference": f"Patient/{patient}"},
            "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                                       "code": "OPTIN"}]},
            "provision": prov}


def entries(bundle):
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset"
    got = [e["resource"] for e in bundle.get("entry", [])]
    assert bundle["total"] == len(got)
    for e in bundle.get("entry", []):
        assert e["search"] == {"mode": "match"}
        assert e["fullUrl"].endswith(f"/Observation/{e['resource']['id']}")
    return got


def ids(bundle):
    return [r["id"] for r in entries(bundle)]


# ----------------------------------------------------------------------
# $lastn
# ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def ln(srv):
    """Two patients' Observations: several codes, a tie on effective time, a
    multi-coded Observation, an undated one and a laboratory one."""
    a, b = new_patient(srv, "la"), new_patient(srv, "lb")
    d = {"a": a, "b": b}
    d["wa"] = [post(srv, observation(a, WEIGHT, day(n), 80 + n, "kg")) for n in range(1, 6)]
    d["ha"] = [post(srv, observation(a, HEART, day(n), 60 + n, "/min")) for n in range(1, 4)]
    # two heart rates at the same time, written one after the other: the
    # later write (lastUpdated) comes first
    d["tie1"] = post(srv, observation(a, HEART, day(4), 70, "/min"))
    d["tie2"] = post(srv, observation(a, HEART, day(4), 71, "/min"))
    # one Observation with two codings: a member of both groups, given once
    d["multi"] = post(srv, observation(a, TEMP, day(2), 37.1, "Cel",
                                       codings=[{"system": LOINC, "code": TEMP},
                                                {"system": SNOMED, "code": "386725007"}]))
    d["temp_old"] = post(srv, observation(a, TEMP, day(1), 36.9, "Cel"))
    # laboratory glucose, one dated, one without effective[x] (undated: last)
    d["glu"] = post(srv, observation(a, GLUCOSE, day(3), 5.4, "mmol/L", category="laboratory"))
    d["glu_undated"] = post(srv, observation(a, GLUCOSE, None, 5.9, "mmol/L", category="laboratory"))
    d["wb"] = [post(srv, observation(b, WEIGHT, day(n), 60 + n, "kg")) for n in range(1, 3)]
    return d


def test_lastn_max1_one_per_group_in_patient_code_order(srv, ln):
    got = entries(op(srv, "lastn", [("patient", f"Patient/{ln['a']}")]))
    # groups in code order (string order): 2339-0, 29463-7, 386725007 (SNOMED
    # coding of the multi-coded one), 8310-5 (its LOINC coding and temp_old),
    # 8867-4; the multi-coded Observation is the latest of two groups and
    # comes once, in the first (8310-5's latest is the same: it adds none)
    assert [r["id"] for r in got] == [ln["glu"], ln["wa"][4], ln["multi"], ln["tie2"]]
    assert all(r["subject"]["reference"] == f"Patient/{ln['a']}" for r in got)


def test_lastn_max3_newest_first_ties_and_undated(srv, ln):
    b = op(srv, "lastn", [("patient", f"Patient/{ln['a']}"), ("max", "3")])
    assert ids(b) == [
        ln["glu"], ln["glu_undated"],                   # dated first, the undated last
        ln["wa"][4], ln["wa"][3], ln["wa"][2],          # newest first
        ln["multi"],                                    # 386725007: only the multi-coded one
        ln["temp_old"],                                 # 8310-5: multi already given
        ln["tie2"], ln["tie1"], ln["ha"][2],            # same time: later lastUpdated first
    ]
    # stable: the same answer again
    assert ids(op(srv, "lastn", [("patient", f"Patient/{ln['a']}"), ("max", "3")])) == ids(b)
    link = b["link"][0]
    assert link["relation"] == "self" and "max=3" in link["url"] and "$lastn" in link["url"]


def test_lastn_same_lastupdated_breaks_ties_by_write_order(srv):
    p = new_patient(srv, "lt")
    # one transaction: the same lastUpdated, the same effective time: the
    # later entry (the version written later) first
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": dict(observation(p, HEART, day(9), v, "/min"), id=i),
         "request": {"method": "PUT", "url": f"Observation/{i}"}}
        for i, v in ((f"{p}-z", 1), (f"{p}-a", 2), (f"{p}-m", 3))]}
    r = requests.post(srv.base + "/fhir", data=json.dumps(bundle), headers=headers(srv), timeout=60)
    assert r.status_code == 200, r.text[:500]
    got = ids(op(srv, "lastn", [("patient", f"Patient/{p}"), ("max", "2")]))
    assert got == [f"{p}-m", f"{p}-a"]


def test_lastn_two_patients_and_subject(srv, ln):
    a, b = ln["a"], ln["b"]
    both = ids(op(srv, "lastn", [("patient", f"Patient/{b},Patient/{a}"), ("code", f"{LOINC}|{WEIGHT}"),
                                 ("max", "2")]))
    first, second = sorted([a, b])
    want = {a: [ln["wa"][4], ln["wa"][3]], b: [ln["wb"][1], ln["wb"][0]]}
    assert both == want[first] + want[second]  # by patient, then newest first
    assert ids(op(srv, "lastn", [("subject", f"Patient/{b}"), ("max", "5")])) == [ln["wb"][1], ln["wb"][0]]


def test_lastn_multi_coded_in_each_of_its_groups(srv, ln):
    a = f"Patient/{ln['a']}"
    assert ids(op(srv, "lastn", [("patient", a), ("code", f"{SNOMED}|386725007")])) == [ln["multi"]]
    assert ids(op(srv, "lastn", [("patient", a), ("code", f"{LOINC}|{TEMP}"), ("max", "5")])) == \
        [ln["multi"], ln["temp_old"]]
    # asked for both codings: given once
    got = ids(op(srv, "lastn", [("patient", a), ("code", f"{SNOMED}|386725007,{LOINC}|{TEMP}"),
                                ("max", "5")]))
    assert got == [ln["multi"], ln["temp_old"]]


def test_lastn_date_and_category_filters(srv, ln):
    a = f"Patient/{ln['a']}"
    got = ids(op(srv, "lastn", [("patient", a), ("code", f"{LOINC}|{WEIGHT}"), ("date", f"ge{day(3)[:10]}"),
                                ("max", "10")]))
    assert got == [ln["wa"][4], ln["wa"][3], ln["wa"][2]]
    got = ids(op(srv, "lastn", [("patient", a), ("category", "laboratory"), ("max", "10")]))
    assert got == [ln["glu"], ln["glu_undated"]]
    got = ids(op(srv, "lastn", [("patient", a), ("date", f"lt{day(2)[:10]}"), ("max", "10")]))
    assert got == [ln["wa"][0], ln["temp_old"], ln["ha"][0]]


def test_lastn_summary_elements_and_count_only(srv, ln):
    a = f"Patient/{ln['a']}"
    b = op(srv, "lastn", [("patient", a), ("_elements", "id,code")])
    r = entries(b)[0]
    assert set(r) <= {"resourceType", "id", "meta", "code", "status"} and "subject" not in r
    c = op(srv, "lastn", [("patient", a), ("_summary", "count")])
    assert c["total"] == 4 and "entry" not in c


def test_lastn_updated_and_deleted_are_not_counted_twice(srv):
    p = new_patient(srv, "lu")
    w = [post(srv, observation(p, WEIGHT, day(n), 70 + n, "kg")) for n in range(1, 5)]
    body = observation(p, WEIGHT, day(4), 99, "kg")
    body["id"] = w[3]
    put(srv, f"/fhir/Observation/{w[3]}", body)        # version 2, same time
    delete(srv, f"/fhir/Observation/{w[2]}")
    got = entries(op(srv, "lastn", [("patient", f"Patient/{p}"), ("max", "3")]))
    assert [r["id"] for r in got] == [w[3], w[1], w[0]]
    assert got[0]["meta"]["versionId"] == "2" and got[0]["valueQuantity"]["value"] == 99


def test_lastn_bad_parameters(srv, ln):
    a = f"Patient/{ln['a']}"
    for params in ([("patient", a), ("_count", "2")], [("patient", a), ("_sort", "-date")],
                   [("patient", a), ("_offset", "1")], [("patient", a), ("max", "0")],
                   [("patient", a), ("max", "101")], [("patient", a), ("max", "x")],
                   [("patient", a), ("max", "1"), ("max", "2")], [("patient", a), ("nonsense", "1")]):
        b = op(srv, "lastn", params, expect=400)
        assert b["resourceType"] == "OperationOutcome", params


def test_lastn_post_form_and_parameters(srv, ln):
    a = f"Patient/{ln['a']}"
    want = ids(op(srv, "lastn", [("patient", a), ("code", f"{LOINC}|{WEIGHT}"), ("max", "2")]))
    r = requests.post(f"{srv.base}/fhir/Observation/$lastn",
                      data=f"patient={a}&code={LOINC}%7C{WEIGHT}&max=2",
                      headers=headers(srv, ctype="application/x-www-form-urlencoded"), timeout=60)
    assert r.status_code == 200, r.text[:500]
    assert ids(r.json()) == want
    params = {"resourceType": "Parameters", "parameter": [
        {"name": "patient", "valueReference": {"reference": a}},
        {"name": "code", "valueString": f"{LOINC}|{WEIGHT}"},
        {"name": "max", "valuePositiveInt": 2}]}
    r = requests.post(f"{srv.base}/fhir/Observation/$lastn", data=json.dumps(params),
                      headers=headers(srv), timeout=60)
    assert r.status_code == 200, r.text[:500]
    assert ids(r.json()) == want


def test_lastn_consent_per_patient_and_per_code(srv, ln):
    a = ln["a"]
    nobody = new_token(srv, "clinic", f"Organization/none{uuid.uuid4().hex[:6]}")
    assert ids(op(srv, "lastn", [("patient", f"Patient/{a}")], token=nobody)) == []
    assert ids(op(srv, "lastn", [], token=nobody)) == []
    org = f"Organization/wt{uuid.uuid4().hex[:6]}"
    put(srv, f"/fhir/Consent/{a}-wt", consent(f"{a}-wt", a, org, codes=[WEIGHT]))
    clinic = new_token(srv, "clinic", org)
    got = ids(op(srv, "lastn", [("patient", f"Patient/{a}"), ("max", "2")], token=clinic))
    assert got == [ln["wa"][4], ln["wa"][3]]
    # without a patient: the patients its Consents name
    assert ids(op(srv, "lastn", [("max", "2")], token=clinic)) == got
    # not the other patient's
    assert ids(op(srv, "lastn", [("patient", f"Patient/{ln['b']}")], token=clinic)) == []
    # the patient herself sees all of hers, and nothing of another's
    pa = new_token(srv, "patient", f"Patient/{a}")
    assert len(ids(op(srv, "lastn", [], token=pa))) == 4
    assert ids(op(srv, "lastn", [("patient", f"Patient/{ln['b']}")], token=pa)) == []


def test_lastn_disclosure_is_audited(srv, ln):
    a = ln["a"]
    org = f"Organization/au{uuid.uuid4().hex[:6]}"
    put(srv, f"/fhir/Consent/{a}-au", consent(f"{a}-au", a, org))
    clinic = new_token(srv, "clinic", org)

    def audits():
        r = requests.get(f"{srv.base}/fhir/AuditEvent", params={"patient": f"Patient/{a}", "_count": "1000"},
                         headers=headers(srv, ctype=None), timeout=60)
        assert r.status_code == 200
        return [e["resource"] for e in r.json().get("entry", [])]
    before = len(audits())
    got = ids(op(srv, "lastn", [("patient", f"Patient/{a}")], token=clinic))
    assert len(got) == 4
    after = audits()
    assert len(after) > before
    refs = {e.get("what", {}).get("reference") for ev in after for e in ev.get("entity", [])}
    assert f"Observation/{ln['wa'][4]}/_history/1" in refs


# ----------------------------------------------------------------------
# $stats
# ----------------------------------------------------------------------

PERIOD = "2024-01-01/2024-01-31"


def stats_of(parameters):
    """{code: {statistic: (value or None, unit, code)}} of a Parameters answer."""
    assert parameters["resourceType"] == "Parameters"
    out = {}
    for p in parameters["parameter"]:
        if p["name"] != "statistics":
            continue
        o = p["resource"]
        assert o["resourceType"] == "Observation" and o["status"] == "final"
        code = o["code"]["coding"][0]["code"]
        comps = {}
        for c in o["component"]:
            coding = c["code"]["coding"][0]
            assert coding["system"] == STATS
            q = c.get("valueQuantity")
            comps[coding["code"]] = (q["value"], q.get("code") or q.get("unit"), q) if q else \
                (None, c["dataAbsentReason"]["coding"][0]["code"], None)
        out[code] = comps
    return out


def sources(parameters):
    return [p["resource"]["id"] for p in parameters["parameter"] if p["name"] == "source"]


def quantiles(xs, n):
    return statistics.quantiles(xs, n=n, method="inclusive")


def skew(xs):
    n, m = len(xs), statistics.fmean(xs)
    m2 = math.fsum((x - m) ** 2 for x in xs) / n
    m3 = math.fsum((x - m) ** 3 for x in xs) / n
    return math.sqrt(n * (n - 1)) / (n - 2) * m3 / m2 ** 1.5


def kurtosis(xs):
    n, m = len(xs), statistics.fmean(xs)
    m2 = math.fsum((x - m) ** 2 for x in xs) / n
    m4 = math.fsum((x - m) ** 4 for x in xs) / n
    g2 = m4 / m2 ** 2 - 3
    return ((n + 1) * g2 + 6) * (n - 1) / ((n - 2) * (n - 3))


ALL = ["average", "maximum", "minimum", "count", "totalcount", "sum", "median", "std-dev", "variance",
       "20-percent", "80-percent", "4-lower", "4-upper", "4-dev", "5-1", "5-2", "5-3", "5-4", "skew",
       "kurtosis"]


def expected(xs, total):
    q4, q5 = quantiles(xs, 4), quantiles(xs, 5)
    return {"average": statistics.mean(xs), "maximum": max(xs), "minimum": min(xs), "count": len(xs),
            "totalcount": total, "sum": math.fsum(xs), "median": statistics.median(xs),
            "std-dev": statistics.stdev(xs), "variance": statistics.variance(xs),
            "20-percent": q5[0], "80-percent": q5[3], "4-lower": q4[0], "4-upper": q4[2],
            "4-dev": (q4[2] - q4[0]) / 2, "5-1": q5[0], "5-2": q5[1], "5-3": q5[2], "5-4": q5[3],
            "skew": skew(xs), "kurtosis": kurtosis(xs)}


@pytest.fixture(scope="module")
def st(srv):
    """A month of weights with gaps (nothing in weeks 2 and 3), in kg and
    [lb_av]; one without a value; one entered-in-error; one outside the
    period; blood pressure panels and a lone systolic reading."""
    p = new_patient(srv, "st")
    readings = [(1, 80.0, "kg"), (2, 176.5, "[lb_av]"), (3, 80.6, "kg"), (6, 81.2, "kg"),
                (22, 178.9, "[lb_av]"), (23, 79.4, "kg"), (28, 82.25, "kg"), (30, 177.0, "[lb_av]")]
    d = {"p": p, "weights": []}
    for n, v, u in readings:
        d["weights"].append(post(srv, observation(p, WEIGHT, day(n), v, u)))
    # the canonical values, computed here (kg)
    d["kg"] = [v * LB if u == "[lb_av]" else v for _, v, u in readings]
    absent = observation(p, WEIGHT, day(10))
    absent["dataAbsentReason"] = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/data-absent-reason",
                                              "code": "asked-declined"}]}
    d["absent"] = post(srv, absent)
    d["eie"] = post(srv, observation(p, WEIGHT, day(11), 500, "kg", status="entered-in-error"))
    d["outside"] = post(srv, observation(p, WEIGHT, "2024-02-03T08:00:00Z", 90, "kg"))
    d["bp"] = [(120, 80), (131, 85), (118, 77), (140, 92)]
    d["panels"] = [post(srv, bp_panel(p, day(2 + 5 * i), s, di)) for i, (s, di) in enumerate(d["bp"])]
    d["lone_sys"] = post(srv, observation(p, SYS, day(15), 125, "mm[Hg]"))
    return d


def test_stats_every_statistic_against_python(srv, st):
    b = op(srv, "stats", [("subject", f"Patient/{st['p']}"), ("code", WEIGHT), ("period", PERIOD),
                          ("statistic", ",".join(ALL))])
    got = stats_of(b)[WEIGHT]
    want = expected(st["kg"], total=len(st["kg"]) + 1)  # + the one without a value
    assert list(got) == ALL  # one component per statistic, in the order asked
    for name, value in want.items():
        assert got[name][0] == pytest.approx(value, rel=1e-9, abs=1e-9), name
    assert got["average"][1] == "kg" and got["count"][1] == "{observations}"
    obs = [p["resource"] for p in b["parameter"]][0]
    assert obs["subject"] == {"reference": f"Patient/{st['p']}"}
    assert obs["effectivePeriod"] == {"start": "2024-01-01", "end": "2024-01-31"}
    assert obs["code"]["coding"] == [{"system": LOINC, "code": WEIGHT}]


def test_stats_explicit_system_is_the_default(srv, st):
    """`system` given (the codes' system) answers what the LOINC default
    does, and names it in the statistics' code."""
    base = [("subject", f"Patient/{st['p']}"), ("code", WEIGHT), ("period", PERIOD),
            ("statistic", "count,average")]
    dflt = op(srv, "stats", base)
    given = op(srv, "stats", base + [("system", LOINC)])
    assert stats_of(given) == stats_of(dflt) and stats_of(given)[WEIGHT]["count"][0] == 8
    obs = [p["resource"] for p in given["parameter"]][0]
    assert obs["code"]["coding"] == [{"system": LOINC, "code": WEIGHT}]
    other = op(srv, "stats", base + [("system", "http://example.org/codes")])
    assert stats_of(other)[WEIGHT]["count"][0] == 0


def test_stats_mixed_units_average_in_kg(srv, st):
    got = stats_of(op(srv, "stats", [("subject", f"Patient/{st['p']}"), ("coding", f"{LOINC}|{WEIGHT}"),
                                     ("period", PERIOD), ("statistic", "average,count,totalcount")]))[WEIGHT]
    assert got["average"][0] == pytest.approx(sum(st["kg"]) / len(st["kg"]), rel=1e-12)
    assert got["average"][2] == {"value": got["average"][0], "unit": "kg", "system": UCUM, "code": "kg"}
    assert got["count"][0] == 8 and got["totalcount"][0] == 9


def test_stats_one_unit_stays_in_it(srv):
    p = new_patient(srv, "lbs")
    lbs = [170.0, 171.5, 169.25, 172.0]
    for n, v in enumerate(lbs, start=1):
        post(srv, observation(p, WEIGHT, day(n), v, "[lb_av]"))
    got = stats_of(op(srv, "stats", [("subject", f"Patient/{p}"), ("code", WEIGHT), ("period", PERIOD),
                                     ("statistic", "average,minimum,std-dev,sum")]))[WEIGHT]
    assert got["average"][1] == "[lb_av]"
    assert got["average"][0] == pytest.approx(statistics.mean(lbs), rel=1e-12)
    assert got["minimum"][0] == pytest.approx(min(lbs), rel=1e-12)
    assert got["std-dev"][0] == pytest.approx(statistics.stdev(lbs), rel=1e-9)
    assert got["sum"][0] == pytest.approx(sum(lbs), rel=1e-12)


def test_stats_gaps_and_subperiods(srv, st):
    p = f"Patient/{st['p']}"
    # weeks 2 and 3 hold no reading: statistics over nothing
    got = stats_of(op(srv, "stats", [("subject", p), ("code", WEIGHT), ("period", "2024-01-08/2024-01-21"),
                                     ("statistic", "average,count,totalcount,median")]))[WEIGHT]
    assert got["count"][0] == 0 and got["totalcount"][0] == 1  # the one without a value; not the e-i-e
    assert got["average"] == (None, "not-applicable", None) and got["median"][0] is None
    # week 4 only
    got = stats_of(op(srv, "stats", [("subject", p), ("code", WEIGHT), ("period", "2024-01-22/2024-01-28"),
                                     ("statistic", "average,count")]))[WEIGHT]
    assert got["count"][0] == 3
    assert got["average"][0] == pytest.approx(statistics.mean(st["kg"][4:7]), rel=1e-12)
    # an open start: everything up to the end of the 6th
    got = stats_of(op(srv, "stats", [("subject", p), ("code", WEIGHT), ("period", "/2024-01-06"),
                                     ("statistic", "count")]))[WEIGHT]
    assert got["count"][0] == 4


def test_stats_blood_pressure_components(srv, st):
    p = f"Patient/{st['p']}"
    b = op(srv, "stats", [("subject", p), ("code", BP), ("period", PERIOD),
                          ("statistic", "average,maximum,minimum,count,median")])
    got = stats_of(b)
    assert list(got) == [DIA, SYS]  # the panel has no value of its own: one per component
    sys = [s for s, _ in st["bp"]]
    dia = [d for _, d in st["bp"]]
    assert got[SYS]["average"][0] == pytest.approx(statistics.mean(sys))
    assert got[SYS]["median"][0] == pytest.approx(statistics.median(sys))
    assert got[DIA]["maximum"][0] == max(dia) and got[DIA]["minimum"][0] == min(dia)
    assert got[SYS]["count"][0] == 4 and got[SYS]["average"][1] == "mm[Hg]"
    # a component code asked directly: the lone reading and the panels' components
    got = stats_of(op(srv, "stats", [("subject", p), ("code", SYS), ("period", PERIOD),
                                     ("statistic", "average,count,totalcount")]))
    assert list(got) == [SYS]
    assert got[SYS]["count"][0] == 5
    assert got[SYS]["average"][0] == pytest.approx(statistics.mean(sys + [125]))
    # several codes in one request, comma list and repeated
    got = stats_of(op(srv, "stats", [("subject", p), ("code", f"{WEIGHT},{BP}"), ("code", WEIGHT),
                                     ("period", PERIOD), ("statistic", "count")]))
    assert list(got) == [WEIGHT, DIA, SYS]


def test_stats_include_sources(srv, st):
    b = op(srv, "stats", [("subject", f"Patient/{st['p']}"), ("code", WEIGHT), ("period", PERIOD),
                          ("statistic", "count"), ("include", "true")])
    # the Observations that gave a value, by time, each once
    assert sources(b) == st["weights"]
    b = op(srv, "stats", [("subject", f"Patient/{st['p']}"), ("code", WEIGHT), ("period", PERIOD),
                          ("statistic", "count"), ("include", "true"), ("limit", "2")])
    assert sources(b) == st["weights"][:2]
    # a panel is the source of both components, given once
    b = op(srv, "stats", [("subject", f"Patient/{st['p']}"), ("code", BP), ("period", PERIOD),
                          ("statistic", "count"), ("include", "true")])
    assert sources(b) == st["panels"]
    assert sources(op(srv, "stats", [("subject", f"Patient/{st['p']}"), ("code", WEIGHT),
                                     ("period", PERIOD), ("statistic", "count")])) == []


def test_stats_duration(srv):
    p = new_patient(srv, "du")
    now = datetime.now(timezone.utc)
    for hours, v in ((0.5, 70.0), (1.5, 71.0), (30, 72.0)):
        when = (now - timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")
        post(srv, observation(p, WEIGHT, when, v, "kg"))
    got = stats_of(op(srv, "stats", [("subject", f"Patient/{p}"), ("code", WEIGHT), ("duration", "2"),
                                     ("statistic", "average,count")]))[WEIGHT]
    assert got["count"][0] == 2 and got["average"][0] == pytest.approx(70.5)
    got = stats_of(op(srv, "stats", [("subject", f"Patient/{p}"), ("code", WEIGHT), ("duration", "48.5"),
                                     ("statistic", "count")]))[WEIGHT]
    assert got["count"][0] == 3


def test_stats_undefined_statistics(srv):
    p = new_patient(srv, "un")
    post(srv, observation(p, WEIGHT, day(3), 70, "kg"))
    post(srv, observation(p, WEIGHT, day(4), 70, "kg"))
    got = stats_of(op(srv, "stats", [("subject", f"Patient/{p}"), ("code", WEIGHT), ("period", PERIOD),
                                     ("statistic", "std-dev,skew,kurtosis,median")]))[WEIGHT]
    assert got["std-dev"][0] == 0 and got["median"][0] == 70
    assert got["skew"] == (None, "not-applicable", None)      # 2 values: skew needs 3
    assert got["kurtosis"] == (None, "not-applicable", None)


def test_stats_mixed_dimensions_are_422(srv):
    p = new_patient(srv, "mx")
    post(srv, observation(p, "99999-9", day(3), 70, "kg", category="laboratory"))
    post(srv, observation(p, "99999-9", day(4), 120, "mm[Hg]", category="laboratory"))
    b = op(srv, "stats", [("subject", f"Patient/{p}"), ("code", "99999-9"), ("period", PERIOD),
                          ("statistic", "average")], expect=422)
    assert b["resourceType"] == "OperationOutcome"


def test_stats_bad_parameters(srv, st):
    p = f"Patient/{st['p']}"
    good = [("subject", p), ("code", WEIGHT), ("period", PERIOD), ("statistic", "average")]
    cases = [
        [x for x in good if x[0] != "subject"],                       # no subject
        [x for x in good if x[0] != "statistic"],                     # no statistic
        [x for x in good if x[0] != "code"],                          # no code
        [x for x in good if x[0] != "period"],                        # neither duration nor period
        good + [("duration", "1")],                                   # both
        [x for x in good if x[0] != "statistic"] + [("statistic", "mode")],    # unknown statistic
        [x for x in good if x[0] != "statistic"] + [("statistic", "regression")],
        [x for x in good if x[0] != "period"] + [("period", "2024-02-01/2024-01-01")],
        [x for x in good if x[0] != "period"] + [("period", "yesterday")],
        [x for x in good if x[0] != "period"] + [("duration", "-3")],
        [x for x in good if x[0] != "subject"] + [("subject", "Group/g1")],
        good + [("include", "maybe")],
        good + [("limit", "0")],
        good + [("bogus", "1")],
    ]
    for params in cases:
        b = op(srv, "stats", params, expect=400)
        assert b["resourceType"] == "OperationOutcome", params
        assert b["issue"][0]["severity"] == "error", params


def test_stats_post_form_and_parameters(srv, st):
    p = f"Patient/{st['p']}"
    want = stats_of(op(srv, "stats", [("subject", p), ("code", WEIGHT), ("period", PERIOD),
                                      ("statistic", "average,count")]))
    r = requests.post(f"{srv.base}/fhir/Observation/$stats",
                      data=f"subject={p}&code={WEIGHT}&period={PERIOD}&statistic=average,count",
                      headers=headers(srv, ctype="application/x-www-form-urlencoded"), timeout=60)
    assert r.status_code == 200, r.text[:500]
    assert stats_of(r.json()) == want
    body = {"resourceType": "Parameters", "parameter": [
        {"name": "subject", "valueUri": p},
        {"name": "coding", "valueCoding": {"system": LOINC, "code": WEIGHT}},
        {"name": "period", "valuePeriod": {"start": "2024-01-01", "end": "2024-01-31"}},
        {"name": "statistic", "valueCode": "average"},
        {"name": "statistic", "valueCode": "count"}]}
    r = requests.post(f"{srv.base}/fhir/Observation/$stats", data=json.dumps(body), headers=headers(srv),
                      timeout=60)
    assert r.status_code == 200, r.text[:500]
    assert stats_of(r.json()) == want


def test_stats_consent(srv, st):
    p = st["p"]
    nobody = new_token(srv, "clinic", f"Organization/sn{uuid.uuid4().hex[:6]}")
    got = stats_of(op(srv, "stats", [("subject", f"Patient/{p}"), ("code", WEIGHT), ("period", PERIOD),
                                     ("statistic", "count,totalcount")], token=nobody))[WEIGHT]
    assert got["count"][0] == 0 and got["totalcount"][0] == 0
    # a Consent for blood pressure only: the weights stay hidden
    org = f"Organization/sb{uuid.uuid4().hex[:6]}"
    put(srv, f"/fhir/Consent/{p}-bp", consent(f"{p}-bp", p, org, codes=[BP]))
    clinic = new_token(srv, "clinic", org)
    got = stats_of(op(srv, "stats", [("subject", f"Patient/{p}"), ("code", f"{WEIGHT},{BP}"),
                                     ("period", PERIOD), ("statistic", "count")], token=clinic))
    assert got[WEIGHT]["count"][0] == 0 and got[SYS]["count"][0] == 4
    # and the statistics over her data are accounted for
    r = requests.get(f"{srv.base}/fhir/AuditEvent", params={"patient": f"Patient/{p}", "_count": "1000"},
                     headers=headers(srv, ctype=None), timeout=60)
    refs = {e.get("what", {}).get("reference") for x in r.json().get("entry", [])
            for e in x["resource"].get("entity", [])}
    assert "Observation/$stats" in refs
