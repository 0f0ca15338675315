"""VN-3.2..3.6: prescription code shape, parsing, type derivation and randomness."""

from __future__ import annotations

import pytest

from eprescription.codes import CODE_LENGTH, InvalidPrescriptionCode, new_code, parse_code, prescription_type


@pytest.mark.parametrize(("raw", "expected"), [
    ("40618R001935-c", "40618r001935-c"),       # the QĐ 808 example, normalised to lower case
    (" 79026ABCDEFG-N ", "79026abcdefg-n"),     # TT 26 prints upper case; scanners add spaces
    ("79026a1b2c3d-h", "79026a1b2c3d-h"),
    ("79026a1b2c3d-y", "79026a1b2c3d-y"),
    ("79026a1b2c3d-t", "79026a1b2c3d-t"),
])
def test_vn_3_3_valid_codes_parse_case_insensitively(raw: str, expected: str) -> None:
    code = parse_code(raw)
    assert str(code) == expected
    assert len(str(code)) == CODE_LENGTH


@pytest.mark.parametrize("raw", ["79026a1b2c3d", "79026a1b2c3d-x", "7902a1b2c3d-c", "79026a1b2c3de-c",
                                 "79026a1b2c3d_c", "79026a1b2c3đ-c", "", "79026a1b2c3d--c"])
def test_vn_3_3_malformed_codes_are_refused(raw: str) -> None:
    with pytest.raises(InvalidPrescriptionCode):
        parse_code(raw)


@pytest.mark.parametrize(("classes", "expected"), [
    ([], "c"), (["none", "none"], "c"), (["psychotropic"], "h"), (["precursor", "none"], "h"),
    (["narcotic"], "n"), (["psychotropic", "narcotic"], "n"),
])
def test_vn_3_6_type_follows_the_most_controlled_line(classes: list[str], expected: str) -> None:
    assert prescription_type(classes) == expected  # type: ignore[arg-type]


def test_vn_3_5_new_codes_are_random_valid_and_carry_the_facility() -> None:
    codes = {str(new_code("79026", "c")) for _ in range(2000)}
    assert len(codes) == 2000
    assert all(parse_code(c).facility_code == "79026" for c in codes)
    random_parts = [c[5:12] for c in codes]
    # a sequence would share long prefixes; CSPRNG output spreads over the whole alphabet
    assert len({p[0] for p in random_parts}) == 36


@pytest.mark.parametrize(("facility", "kind"), [("7902", "c"), ("79026", "y"), ("79026", "t"), ("7902!", "c")])
def test_vn_3_4_only_c_n_h_are_issued_for_a_valid_facility(facility: str, kind: str) -> None:
    with pytest.raises(InvalidPrescriptionCode):
        new_code(facility, kind)  # type: ignore[arg-type]
