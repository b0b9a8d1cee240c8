"""Every cases/*.case file is one test, named by the file: `pytest -k 10-search`."""

from pathlib import Path

import pytest

import harness

CASES = sorted((Path(__file__).parent / "cases").glob("*.case"))


@pytest.mark.parametrize("case_file", CASES, ids=[case.stem for case in CASES])
def test_case(case_file, settings):
    report = harness.run_case_file(case_file, settings)
    if report:
        pytest.fail(report, pytrace=False)


def test_a_failing_case_is_reported_with_the_server_log(settings, tmp_path):
    case = tmp_path / "wrong.case"
    case.write_text("GET /healthz\nexpect status 200\n---\nGET /fhir/metadata\nexpect json fhirVersion = 9.9.9\n")
    report = harness.run_case_file(case, settings)
    assert report.startswith(
        "FAIL wrong.case:2 (line 4) GET /fhir/metadata\n"
        "    line 5: expect json fhirVersion = 9.9.9\n"
        "      expected json fhirVersion = 9.9.9, got string 4.0.1\n"
        "  --- server log ---\n"
    )
    assert '"msg":"listening"' in report and report.endswith("  --- end of server log ---")
