"""Phone numbers as people type them, and the forms we log and hand to the SMS gateway."""

import pytest

from notifications.phone import InvalidPhoneNumber, mask_phone, normalize_vn_phone, to_domestic


@pytest.mark.parametrize(
    "raw",
    [
        "0912345678",
        "+84912345678",
        "84912345678",
        "0084 91 234 5678",
        "(+84) 0912 345 678",
        " 0912.345.678 ",
        "0912-345-678",
        "+84 (0) 912 345 678",
    ],
)
def test_usual_ways_of_writing_a_mobile_number_give_one_e164_form(raw: str) -> None:
    assert normalize_vn_phone(raw) == "+84912345678"


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("01621234567", "+84321234567"),
        ("01631234567", "+84331234567"),
        ("01641234567", "+84341234567"),
        ("01651234567", "+84351234567"),
        ("01661234567", "+84361234567"),
        ("01671234567", "+84371234567"),
        ("01681234567", "+84381234567"),
        ("01691234567", "+84391234567"),
        ("01201234567", "+84701234567"),
        ("01211234567", "+84791234567"),
        ("01221234567", "+84771234567"),
        ("01261234567", "+84761234567"),
        ("01281234567", "+84781234567"),
        ("01231234567", "+84831234567"),
        ("01241234567", "+84841234567"),
        ("01251234567", "+84851234567"),
        ("01271234567", "+84811234567"),
        ("01291234567", "+84821234567"),
        ("01861234567", "+84561234567"),
        ("01881234567", "+84581234567"),
        ("01991234567", "+84591234567"),
        ("+84 162 123 4567", "+84321234567"),
        ("841201234567", "+84701234567"),
    ],
)
def test_old_11_digit_mobile_numbers_become_their_10_digit_replacement(old: str, new: str) -> None:
    assert normalize_vn_phone(old) == new


@pytest.mark.parametrize(("raw", "e164"), [("0521234567", "+84521234567"), ("055 123 4567", "+84551234567")])
def test_mobile_ranges_missing_from_libphonenumber_metadata_are_accepted(raw: str, e164: str) -> None:
    assert normalize_vn_phone(raw) == e164


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("abc", "unexpected characters"),
        ("0912345678abc", "unexpected characters"),
        ("0912345678 ext 5", "unexpected characters"),
        ("+", "not a phone number"),
        ("0" * 33, "too long"),
        ("0912 345 678" + " " * 21, "too long"),
        ("+14155552671", "not a Vietnamese number"),
        ("+66 81 234 5678", "not a Vietnamese number"),
        ("024 3812 3456", "not a mobile number"),
        ("1900 123 456", "not a mobile number"),
        ("1800 1234", "not a mobile number"),
        ("0912", "not a valid number"),
        ("091234567", "not a valid number"),
        ("09123456789", "not a valid number"),
        ("0112345678", "not a valid number"),
    ],
)
def test_numbers_that_cannot_receive_an_sms_are_refused(raw: str, reason: str) -> None:
    with pytest.raises(InvalidPhoneNumber) as caught:
        normalize_vn_phone(raw)
    assert caught.value.reason == reason


def test_refusal_message_explains_the_format_without_echoing_the_input() -> None:
    with pytest.raises(InvalidPhoneNumber) as caught:
        normalize_vn_phone("+14155552671")
    assert "0912345678" in str(caught.value)
    assert "4155552671" not in str(caught.value)


@pytest.mark.parametrize(
    ("e164", "masked", "domestic"),
    [
        ("+84912345678", "+8491*****78", "0912345678"),
        ("+84321234567", "+8432*****67", "0321234567"),
        ("+84551234567", "+8455*****67", "0551234567"),
    ],
)
def test_stored_numbers_are_masked_for_logs_and_made_domestic_for_the_gateway(
    e164: str, masked: str, domestic: str
) -> None:
    assert mask_phone(e164) == masked
    assert to_domestic(e164) == domestic


@pytest.mark.parametrize("not_normalised", ["0912345678", "84912345678", "+1415555267", "+849123456789"])
def test_masking_and_domestic_form_need_a_normalised_number(not_normalised: str) -> None:
    with pytest.raises(InvalidPhoneNumber):
        mask_phone(not_normalised)
    with pytest.raises(InvalidPhoneNumber):
        to_domestic(not_normalised)
