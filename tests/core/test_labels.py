import pytest

from pipeline.core.labels import LABEL_NAMES, UNIFIED_TO_NATIVE, UnknownLabelError, to_unified


def name(scheme, code):
    return LABEL_NAMES[to_unified(scheme, code)]


def test_unified_order():
    assert LABEL_NAMES == ("neutral", "anger", "contempt", "disgust", "fear", "happiness", "sadness", "surprise")


@pytest.mark.parametrize("scheme,expected", [
    ("fer2013", ["anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral"]),
    ("ckplus", ["neutral", "anger", "contempt", "disgust", "fear", "happiness", "sadness", "surprise"]),
])
def test_numeric_codes_from_zero(scheme, expected):
    assert [name(scheme, i) for i in range(len(expected))] == expected


def test_rafdb_codes_from_one():
    assert [name("rafdb", i) for i in range(1, 8)] == [
        "surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral"]


@pytest.mark.parametrize("scheme", ["jaffe", "kdef"])
def test_letter_codes(scheme):
    first = "FE" if scheme == "jaffe" else "AF"
    assert name(scheme, first) == "fear"
    assert [name(scheme, c) for c in ["AN", "DI", "HA", "NE", "SA", "SU"]] == [
        "anger", "disgust", "happiness", "neutral", "sadness", "surprise"]


def test_ckplus48_folder_names():
    assert name("ckplus48", "happy") == "happiness"
    assert name("ckplus48", "contempt") == "contempt"


@pytest.mark.parametrize("scheme,bad", [("fer2013", 7), ("rafdb", 0), ("ckplus", "8"), ("jaffe", "XX"), ("kdef", "FE")])
def test_unknown_codes_raise(scheme, bad):
    with pytest.raises(UnknownLabelError, match=scheme):
        to_unified(scheme, bad)


def test_round_trip():
    for scheme in ["fer2013", "ckplus", "rafdb", "jaffe", "kdef"]:
        for code in ["AN", "HA"] if scheme in ("jaffe", "kdef") else ["1", "3"]:
            assert UNIFIED_TO_NATIVE[scheme][LABEL_NAMES[to_unified(scheme, code)]] == code
