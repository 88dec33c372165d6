"""What users may choose: usernames, passwords, display names, device names."""

from __future__ import annotations

import pytest

from trunkline.chat import RESERVED_USERNAMES, InvalidInput, normalize_username
from trunkline.chat.validation import check_device_name, check_display_name, check_password


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("ada", "ada"),
        ("Ada", "ada"),
        ("ADA_L.2-x", "ada_l.2-x"),
        ("\uff21\uff24\uff21", "ada"),  # full-width letters
        ("\u212aelvin", "kelvin"),  # the Kelvin sign
        ("\u2460\u2461\u2462", "123"),  # circled digits
        ("a" * 32, "a" * 32),
    ],
)
def test_usernames_are_stored_nfkc_and_lower_case(given: str, stored: str) -> None:
    assert normalize_username(given) == stored


@pytest.mark.parametrize(
    ("given", "code"),
    [
        ("ab", "too_short"),
        ("", "too_short"),
        ("a" * 33, "too_long"),
        ("ada lovelace", "invalid_characters"),
        ("_ada", "invalid_characters"),
        (".ada", "invalid_characters"),
        ("ad\u00e4", "invalid_characters"),
        ("ada@home", "invalid_characters"),
        ("ada\n", "invalid_characters"),
        ("admin", "reserved"),
        ("Everyone", "reserved"),
        (b"ada", "wrong_type"),
        (None, "wrong_type"),
    ],
)
def test_bad_usernames_are_refused_with_a_code(given: object, code: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        normalize_username(given)
    assert (raised.value.field, raised.value.code) == ("username", code)
    assert str(raised.value) == raised.value.message != ""


def test_every_reserved_name_would_otherwise_be_valid() -> None:
    # Otherwise reserving it would mean nothing.
    for name in RESERVED_USERNAMES:
        with pytest.raises(InvalidInput) as raised:
            normalize_username(name.upper())
        assert raised.value.code == "reserved"


@pytest.mark.parametrize(
    ("given", "code"),
    [("1234567", "too_short"), ("x" * 1025, "too_long"), (12345678, "wrong_type")],
)
def test_bad_passwords_are_refused(given: object, code: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        check_password(given)
    assert (raised.value.field, raised.value.code) == ("password", code)


@pytest.mark.parametrize("given", ["12345678", "x" * 1024, "correct horse \U0001f40e battery"])
def test_passwords_of_8_to_1024_characters_of_any_kind_are_accepted(given: str) -> None:
    assert check_password(given) == given


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("Ada", "Ada"),
        ("  Ada Lovelace  ", "Ada Lovelace"),
        ("e\u0301", "\u00e9"),  # NFC
        ("\U0001f600" * 64, "\U0001f600" * 64),
    ],
)
def test_display_names_are_stripped_and_nfc(given: str, stored: str) -> None:
    assert check_display_name(given) == stored


@pytest.mark.parametrize(
    ("given", "code"),
    [
        ("", "too_short"),
        ("   ", "too_short"),
        ("x" * 65, "too_long"),
        ("Ada\nLovelace", "control_characters"),
        ("Ada\tLovelace", "control_characters"),
        ("Ada\x00", "control_characters"),
        ("Ada\u2028Lovelace", "control_characters"),
        (7, "wrong_type"),
    ],
)
def test_bad_display_names_are_refused(given: object, code: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        check_display_name(given)
    assert (raised.value.field, raised.value.code) == ("display_name", code)


def test_device_names_are_optional_and_follow_the_display_name_rule() -> None:
    assert check_device_name(None) is None
    assert check_device_name(" laptop ") == "laptop"
    with pytest.raises(InvalidInput) as raised:
        check_device_name("lap\ntop")
    assert (raised.value.field, raised.value.code) == ("device_name", "control_characters")
