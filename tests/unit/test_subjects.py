"""The subjects of the contract have one builder and one parser (events/subjects.py), and
nothing else in the code writes or splits a subject by hand."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from events import EVENT_TYPES, SPONSOR_SITE, TRIAL_PATIENT
from events.subjects import (
    SAFETY_SITE,
    AlertSubject,
    IntakeSubject,
    LedgerSubject,
    alert_subject,
    alerts_wildcard,
    intake_subject,
    ledger_subject,
    parse_alert_subject,
    parse_intake_subject,
    parse_ledger_subject,
    patient_wildcard,
    safety_intake_subject,
    site_intake_wildcard,
    trial_wildcard,
    type_wildcard,
)

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("site", ["site01", SAFETY_SITE, SPONSOR_SITE, "a-b_C9"])
def test_an_intake_subject_reads_back_as_the_trial_and_site_it_was_built_from(site: str) -> None:
    assert parse_intake_subject(intake_subject("HAIC-PD1-LEN", site)) == IntakeSubject(
        "HAIC-PD1-LEN", site
    )


def test_the_safety_intake_is_the_trials_intake_of_the_safety_officers() -> None:
    subject = safety_intake_subject("HAIC-PD1-LEN")
    assert subject == "intake.HAIC-PD1-LEN._safety"
    assert parse_intake_subject(subject).site_id == SAFETY_SITE


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_a_ledger_subject_of_every_event_type_reads_back_as_its_patient_and_type(
    event_type: str,
) -> None:
    for key in (("HAIC", "site01", "P0001"), ("HAIC", SPONSOR_SITE, TRIAL_PATIENT)):
        assert parse_ledger_subject(ledger_subject(*key, event_type)) == LedgerSubject(
            *key, event_type
        )


def test_an_alert_subject_reads_back_as_its_trial_and_site() -> None:
    assert parse_alert_subject(alert_subject("HAIC", "site01")) == AlertSubject("HAIC", "site01")


def test_the_wildcards_cover_exactly_the_subjects_they_name() -> None:
    assert trial_wildcard("HAIC") == "ledger.HAIC.>"
    assert patient_wildcard("HAIC", "site01", "P1") == "ledger.HAIC.site01.P1.*"
    assert type_wildcard("death") == "ledger.*.*.*.death"
    assert site_intake_wildcard("site01") == "intake.*.site01"
    assert alerts_wildcard("HAIC") == "alerts.sae.HAIC.*"
    assert alerts_wildcard("HAIC", "site01") == alert_subject("HAIC", "site01")


MALFORMED_INTAKE = {
    "another family": "ledger.HAIC.site01",
    "a missing token": "intake.HAIC",
    "an extra token": "intake.HAIC.site01.P1",
    "an empty trial": "intake..site01",
    "an empty site": "intake.HAIC.",
    "a wildcard site": "intake.HAIC.*",
    "a full wildcard": "intake.>",
    "a trial with a space": "intake.HA IC.site01",
    "a site with a newline": "intake.HAIC.site01\n",
    "an empty subject": "",
}


@pytest.mark.parametrize("subject", MALFORMED_INTAKE.values(), ids=MALFORMED_INTAKE.keys())
def test_a_malformed_intake_subject_is_refused_saying_what_was_expected(subject: str) -> None:
    with pytest.raises(ValueError, match=re.escape("intake.{trial_id}.{site_id}")):
        parse_intake_subject(subject)


MALFORMED_LEDGER = {
    "another family": "intake.HAIC.site01.P1.enrolled",
    "a missing token": "ledger.HAIC.site01.P1",
    "an extra token": "ledger.HAIC.site01.P1.enrolled.x",
    "an empty patient": "ledger.HAIC.site01..enrolled",
    "a wildcard type": "ledger.HAIC.site01.P1.*",
    "a tail wildcard": "ledger.HAIC.site01.P1.>",
    "a trial with a colon": "ledger.HA:IC.site01.P1.enrolled",
}


@pytest.mark.parametrize("subject", MALFORMED_LEDGER.values(), ids=MALFORMED_LEDGER.keys())
def test_a_malformed_ledger_subject_is_refused_saying_what_was_expected(subject: str) -> None:
    with pytest.raises(ValueError, match=re.escape("ledger.{trial_id}.{site_id}.{patient_id}")):
        parse_ledger_subject(subject)


MALFORMED_ALERT = {
    "not an SAE alert": "alerts.other.HAIC.site01",
    "a missing token": "alerts.sae.HAIC",
    "an extra token": "alerts.sae.HAIC.site01.P1",
    "a wildcard site": "alerts.sae.HAIC.*",
    "an empty trial": "alerts.sae..site01",
}


@pytest.mark.parametrize("subject", MALFORMED_ALERT.values(), ids=MALFORMED_ALERT.keys())
def test_a_malformed_alert_subject_is_refused_saying_what_was_expected(subject: str) -> None:
    with pytest.raises(ValueError, match=re.escape("alerts.sae.{trial_id}.{site_id}")):
        parse_alert_subject(subject)


def test_the_parser_names_the_token_that_is_not_one() -> None:
    with pytest.raises(ValueError, match=r"site_id '\*' is not a token"):
        parse_intake_subject("intake.HAIC.*")


@pytest.mark.parametrize("token", ["", "*", ">", "a.b", "a b", "P1\n"])
def test_no_subject_is_built_from_a_value_that_is_not_a_token(token: str) -> None:
    builders = (
        lambda: intake_subject("HAIC", token),
        lambda: safety_intake_subject(token),
        lambda: ledger_subject("HAIC", "site01", token, "enrolled"),
        lambda: alert_subject(token, "site01"),
        lambda: type_wildcard(token),
        lambda: site_intake_wildcard(token),
        lambda: alerts_wildcard(token),
    )
    for build in builders:
        with pytest.raises(ValueError, match="not a subject token"):
            build()


# -- nothing builds or splits a subject by hand ----------------------------------------------
# A string literal that starts a contract subject and goes on with a token separator,
# a wildcard or a placeholder: `f"ledger.{trial}.>"`, `"intake.*.*"`, `"alerts.sae.>"`.
HAND_BUILT = re.compile(r"""(?:\bf)?["'](?:intake|ledger|alerts)\.[^"'\s]*[.*>{]""")
SPLIT = re.compile(r"""\.split\(\s*["']\.["']""")
# JetStream's own ack subjects ($JS.ACK...) are not the ledger's contract: read in one place.
SPLITS_ALLOWED = {"services/ledger/io.py": 1}
THE_BUILDER = "events/subjects.py"


def _sources() -> list[Path]:
    return sorted(
        path
        for folder in ("services", "projections", "events", "tests/bench")
        for path in (ROOT / folder).rglob("*.py")
        if path.relative_to(ROOT).as_posix() != THE_BUILDER
    )


def test_no_module_writes_a_subject_of_the_contract_by_hand() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in _sources()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if HAND_BUILT.search(line)
    ]
    assert found == [], "build subjects with events/subjects.py:\n" + "\n".join(found)


def test_no_module_splits_a_subject_by_hand() -> None:
    counts: dict[str, int] = {}
    for path in _sources():
        name = path.relative_to(ROOT).as_posix()
        hits = len(SPLIT.findall(path.read_text(encoding="utf-8")))
        if hits:
            counts[name] = hits
    assert counts == SPLITS_ALLOWED, "parse subjects with events/subjects.py"


def test_the_grep_finds_the_hand_written_subjects_it_is_meant_to_find() -> None:
    for line in (
        'subject = f"ledger.{trial}.{site}.{patient}.{kind}"',
        'await nc.subscribe("alerts.sae.>")',
        "INTAKE = 'intake.*.*'",
    ):
        assert HAND_BUILT.search(line), line
    for line in ('env_path = directory / "ledger.env"', '"""on `intake.<trial>._safety`"""'):
        assert not HAND_BUILT.search(line), line
    assert SPLIT.search('parts = subject.split(".")')
