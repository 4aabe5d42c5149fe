"""common.timestamps: RFC 3339 text and float epoch seconds <-> integer nanoseconds."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.timestamps import (
    MAX_NS,
    MIN_NS,
    TimestampError,
    check_range,
    date_value_to_ns,
    epoch_seconds_to_ns,
    format_rfc3339_ns,
    parse_rfc3339_ns,
)

# 2026-03-14T12:00:00Z, the second the fluent-bit captures were stamped in.
NOON = 1_773_489_600
NOON_NS = NOON * 1_000_000_000


# --- parse_rfc3339_ns ---


def test_a_utc_timestamp_with_nine_fraction_digits_keeps_every_nanosecond():
    assert parse_rfc3339_ns("2026-03-14T12:00:00.123456789Z") == NOON_NS + 123_456_789


def test_a_timestamp_without_a_fraction_is_a_whole_second():
    assert parse_rfc3339_ns("2026-03-14T12:00:00Z") == NOON_NS


@pytest.mark.parametrize(
    "fraction, extra_ns", [("1", 100_000_000), ("123", 123_000_000), ("000001", 1_000), ("000000001", 1)]
)
def test_a_short_fraction_is_read_as_the_leading_digits_of_the_second(fraction, extra_ns):
    assert parse_rfc3339_ns(f"2026-03-14T12:00:00.{fraction}Z") == NOON_NS + extra_ns


def test_a_positive_offset_is_subtracted_to_reach_utc():
    assert parse_rfc3339_ns("2026-03-14T17:30:00+05:30") == NOON_NS


def test_a_negative_offset_is_added_to_reach_utc():
    assert parse_rfc3339_ns("2026-03-14T07:00:00.5-05:00") == NOON_NS + 500_000_000


def test_a_timestamp_without_an_offset_is_taken_as_utc():
    # fluent-bit's json_date_format java_sql_timestamp writes no offset.
    assert parse_rfc3339_ns("2026-03-14 12:00:00.123456") == NOON_NS + 123_456_000


def test_a_zero_offset_equals_z():
    assert parse_rfc3339_ns("2026-03-14T12:00:00+00:00") == parse_rfc3339_ns("2026-03-14T12:00:00Z")


@pytest.mark.parametrize("text", ["2026-03-14t12:00:00z", "2026-03-14 12:00:00Z"])
def test_lowercase_letters_and_a_space_separator_are_accepted(text):
    assert parse_rfc3339_ns(text) == NOON_NS


def test_the_epoch_itself_is_zero():
    assert parse_rfc3339_ns("1970-01-01T00:00:00Z") == 0


def test_the_last_storable_nanosecond_parses_to_the_int64_maximum():
    assert parse_rfc3339_ns("2262-04-11T23:47:16.854775807Z") == MAX_NS


def test_one_nanosecond_after_the_int64_maximum_is_out_of_range():
    with pytest.raises(TimestampError, match="outside"):
        parse_rfc3339_ns("2262-04-11T23:47:16.854775808Z")


def test_a_timestamp_before_1970_is_out_of_range():
    with pytest.raises(TimestampError, match="outside"):
        parse_rfc3339_ns("1969-12-31T23:59:59.999999999Z")


def test_an_offset_that_moves_the_first_instant_before_1970_is_out_of_range():
    with pytest.raises(TimestampError, match="outside"):
        parse_rfc3339_ns("1970-01-01T00:00:00+00:01")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2026-03-14T12:00:00.Z",  # a dot without digits
        "2026-03-14T12:00:00.1234567890Z",  # ten fraction digits
        "2026-03-14T12:00:00Z ",  # trailing text
        " 2026-03-14T12:00:00Z",  # leading text
        "2026-3-14T12:00:00Z",
        "1773489600",
        "2026-03-14T12:00Z",
    ],
)
def test_text_that_is_not_rfc_3339_is_rejected(text):
    with pytest.raises(TimestampError, match="not an RFC 3339 timestamp"):
        parse_rfc3339_ns(text)


@pytest.mark.parametrize(
    "text", ["2026-02-30T00:00:00Z", "2026-13-01T00:00:00Z", "2026-03-14T24:00:00Z", "2026-03-14T12:61:00Z"]
)
def test_an_impossible_date_or_clock_time_is_rejected(text):
    with pytest.raises(TimestampError, match="not a valid date and time"):
        parse_rfc3339_ns(text)


@pytest.mark.parametrize("offset", ["+24:00", "-25:00", "+05:60"])
def test_an_impossible_utc_offset_is_rejected(offset):
    with pytest.raises(TimestampError, match="not a valid UTC offset"):
        parse_rfc3339_ns(f"2026-03-14T12:00:00{offset}")


def test_timestamp_error_is_a_value_error():
    assert issubclass(TimestampError, ValueError)


# --- epoch_seconds_to_ns ---


def test_fluent_bits_double_date_is_rounded_to_the_microsecond():
    # 1773489600.123457 is not exactly representable; the float noise must not leak into the ns.
    assert epoch_seconds_to_ns(1773489600.123457) == NOON_NS + 123_457_000


def test_whole_epoch_seconds_become_whole_seconds_of_nanoseconds():
    assert epoch_seconds_to_ns(NOON) == NOON_NS


def test_zero_seconds_is_the_epoch():
    assert epoch_seconds_to_ns(0.0) == 0


@pytest.mark.parametrize("seconds", [float("nan"), float("inf"), float("-inf")])
def test_a_non_finite_number_of_seconds_is_rejected(seconds):
    with pytest.raises(TimestampError, match="not a finite number"):
        epoch_seconds_to_ns(seconds)


@pytest.mark.parametrize("seconds", [-0.000001, -1.0, 1e13, 1e300])
def test_seconds_outside_1970_to_2262_are_rejected(seconds):
    with pytest.raises(TimestampError, match="outside"):
        epoch_seconds_to_ns(seconds)


def test_epoch_seconds_to_ns_reads_milliseconds_as_seconds_and_finds_them_out_of_range():
    # Telling epoch_ms from seconds is date_value_to_ns's job, not this function's.
    with pytest.raises(TimestampError, match="outside"):
        epoch_seconds_to_ns(1_773_489_600_123)


@given(st.integers(min_value=0, max_value=4_102_444_800 * 1_000_000))  # up to 2100, in microseconds
def test_any_microsecond_written_as_float_seconds_comes_back_exactly(micros):
    assert epoch_seconds_to_ns(micros / 1_000_000) == micros * 1000


# --- date_value_to_ns: fluent-bit's `date` in each json_date_format ---


@pytest.mark.parametrize(
    "value, ns",
    [
        (1773489600.123457, NOON_NS + 123_457_000),  # double
        (NOON, NOON_NS),  # epoch
        (1_773_489_600_123, NOON_NS + 123_000_000),  # epoch_ms
        ("2026-03-14T12:00:00.123456Z", NOON_NS + 123_456_000),  # iso8601
        ("2026-03-14 12:00:00.123456", NOON_NS + 123_456_000),  # java_sql_timestamp, UTC
    ],
)
def test_date_value_to_ns_reads_every_fluent_bit_date_format(value, ns):
    assert date_value_to_ns(value) == ns


def test_an_integer_date_from_10_to_the_11_on_is_milliseconds():
    assert date_value_to_ns(10**11) == 10**11 * 1_000_000


def test_an_integer_date_just_below_10_to_the_11_is_seconds_and_so_out_of_range():
    with pytest.raises(TimestampError, match="outside"):
        date_value_to_ns(10**11 - 1)


def test_a_float_date_is_always_seconds_however_large():
    with pytest.raises(TimestampError, match="outside"):
        date_value_to_ns(1_773_489_600_123.0)


def test_a_string_date_that_is_not_a_timestamp_is_rejected():
    with pytest.raises(TimestampError, match="not an RFC 3339 timestamp"):
        date_value_to_ns("1773489600")


@pytest.mark.parametrize("value", [-(10**11), -1, -0.5])
def test_a_negative_date_is_out_of_range(value):
    with pytest.raises(TimestampError, match="outside"):
        date_value_to_ns(value)


# --- check_range ---


@pytest.mark.parametrize("ns", [MIN_NS, 1, MAX_NS])
def test_check_range_returns_values_inside_the_range_unchanged(ns):
    assert check_range(ns) == ns


@pytest.mark.parametrize("ns", [MIN_NS - 1, MAX_NS + 1])
def test_check_range_rejects_values_just_outside_the_range(ns):
    with pytest.raises(TimestampError):
        check_range(ns)


# --- format_rfc3339_ns ---


def test_formatting_writes_utc_with_a_z():
    assert format_rfc3339_ns(NOON_NS) == "2026-03-14T12:00:00Z"


def test_formatting_trims_trailing_zeros_of_the_fraction():
    assert format_rfc3339_ns(NOON_NS + 100_000_000) == "2026-03-14T12:00:00.1Z"


def test_formatting_keeps_leading_zeros_of_the_fraction():
    assert format_rfc3339_ns(NOON_NS + 1) == "2026-03-14T12:00:00.000000001Z"


def test_formatting_keeps_all_nine_digits_when_needed():
    assert format_rfc3339_ns(NOON_NS + 123_456_789) == "2026-03-14T12:00:00.123456789Z"


def test_formatting_the_epoch_and_the_last_storable_nanosecond():
    assert format_rfc3339_ns(0) == "1970-01-01T00:00:00Z"
    assert format_rfc3339_ns(MAX_NS) == "2262-04-11T23:47:16.854775807Z"


@given(st.integers(min_value=MIN_NS, max_value=MAX_NS))
def test_format_then_parse_gives_back_any_storable_nanosecond(ns):
    assert parse_rfc3339_ns(format_rfc3339_ns(ns)) == ns


@given(st.integers(min_value=MIN_NS, max_value=MAX_NS))
def test_formatted_text_is_canonical_utc_without_trailing_fraction_zeros(ns):
    text = format_rfc3339_ns(ns)
    assert text.endswith("Z")
    if "." in text:
        assert not text[:-1].endswith("0")
    assert len(text) <= len("2262-04-11T23:47:16.854775807Z")
