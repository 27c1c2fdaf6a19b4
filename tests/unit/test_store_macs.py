import pytest

from cmt_slurm.errors import BadInput
from cmt_slurm.store.nodes import normalise_mac


@pytest.mark.parametrize(
    "text",
    ["52:54:00:AB:cd:01", "52-54-00-ab-cd-01", "5254.00ab.cd01", "525400abcd01", " 52:54:00:ab:cd:01\n"],
)
def test_mac_spellings_normalise_to_lowercase_colons(text: str) -> None:
    assert normalise_mac(text) == "52:54:00:ab:cd:01"


@pytest.mark.parametrize("text", ["", "52:54:00:ab:cd", "52:54:00:ab:cd:0g", "5:254:00:ab:cd:01", "${mac}"])
def test_bad_macs_are_bad_input(text: str) -> None:
    with pytest.raises(BadInput, match="is not 6 bytes of hex"):
        normalise_mac(text)
