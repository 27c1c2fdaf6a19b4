import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cmt_slurm.errors import BadInput
from cmt_slurm.versions import Version


@pytest.mark.parametrize("text", ["2.17", "2.36", "2.9", "2", "0", "2.28.1", "10.0.3"])
def test_parse_round_trips(text: str) -> None:
    assert str(Version.parse(text)) == text


def test_blanks_around_are_ignored() -> None:
    assert str(Version.parse(" 2.34\n")) == "2.34"


def test_numeric_order_per_component() -> None:
    v = Version.parse
    assert v("2.9") < v("2.17") < v("2.28") < v("2.36")
    assert v("2.17") > v("2.9")
    assert sorted([v("2.36"), v("2.9"), v("2.17")]) == [v("2.9"), v("2.17"), v("2.36")]
    assert max(v("2.17"), v("2.28")) == v("2.28")


def test_missing_components_count_as_zero() -> None:
    v = Version.parse
    assert v("2.28") == v("2.28.0")
    assert hash(v("2.28")) == hash(v("2.28.0"))
    assert v("2.28") < v("2.28.1")
    assert len({v("2.28"), v("2.28.0")}) == 1


def test_not_equal_to_other_types() -> None:
    assert Version.parse("2.17") != "2.17"


@pytest.mark.parametrize(
    "text", ["2.3x", "", "2..3", ".2", "2.", "v2.17", "2.17-1", "2.028", "٢.١٧", "2 .17"]
)
def test_rejects_non_versions(text: str) -> None:
    with pytest.raises(BadInput) as exc:
        Version.parse(text)
    assert "is not a version like 2.34" in exc.value.message
    assert exc.value.hint


def test_message_names_what() -> None:
    with pytest.raises(BadInput) as exc:
        Version.parse("2.3x", what="glibc")
    assert exc.value.message == 'glibc: "2.3x" is not a version like 2.34'


def test_non_string_is_bad_input() -> None:
    with pytest.raises(BadInput):
        Version.parse(2.17)  # type: ignore[arg-type]


def test_overlong_input_is_refused_and_shortened() -> None:
    with pytest.raises(BadInput) as exc:
        Version.parse("1." * 100 + "1")
    assert len(exc.value.message) < 120


@given(st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=5))
def test_order_matches_integer_tuples(parts: list[int]) -> None:
    text = ".".join(map(str, parts))
    v = Version.parse(text)
    assert str(v) == text
    other = Version.parse(".".join(map(str, [*parts[:-1], parts[-1] + 1])))
    assert v < other


@given(st.text(max_size=30))
def test_random_text_parses_or_raises_bad_input(text: str) -> None:
    with contextlib.suppress(BadInput):
        Version.parse(text)
