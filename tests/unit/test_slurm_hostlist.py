import pytest
from hypothesis import given
from hypothesis import strategies as st

from cmt_slurm.errors import BadInput
from cmt_slurm.slurm.hostlist import compress_hostlist, expand_hostlist


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("", []),
        ("(null)", []),
        ("n1", ["n1"]),
        ("n[1-3]", ["n1", "n2", "n3"]),
        ("n[1-3,5]", ["n1", "n2", "n3", "n5"]),
        ("n[01-03]", ["n01", "n02", "n03"]),
        ("n[08-10]", ["n08", "n09", "n10"]),
        ("n[1-2],gpu[01-02]", ["n1", "n2", "gpu01", "gpu02"]),
        ("r[1-2]n[1-2]", ["r1n1", "r1n2", "r2n1", "r2n2"]),
        ("n[1-2]-ib", ["n1-ib", "n2-ib"]),
        ("a,b,a", ["a", "b"]),
        ("node-a, node-b", ["node-a", "node-b"]),
    ],
)
def test_expand(text: str, names: list[str]) -> None:
    assert expand_hostlist(text) == names


@pytest.mark.parametrize(
    ("text", "msg"),
    [
        ("n[1-3", "not closed"),
        ("n1-3]", "without"),
        ("n[[1]]", "nested"),
        ("n[3-1]", "goes down"),
        ("n[a-b]", "is not N or N-M"),
        ("n[]", "is not N or N-M"),
    ],
)
def test_expand_rejects(text: str, msg: str) -> None:
    with pytest.raises(BadInput, match=msg):
        expand_hostlist(text)


@pytest.mark.parametrize(
    ("names", "text"),
    [
        ([], ""),
        (["n1"], "n1"),
        (["n3", "n1", "n2"], "n[1-3]"),
        (["n1", "n2", "n3", "n5", "m5"], "m5,n[1-3,5]"),
        (["n01", "n02", "n03", "n10"], "n10,n[01-03]"),
        (["login", "n1"], "login,n1"),
    ],
)
def test_compress(names: list[str], text: str) -> None:
    assert compress_hostlist(names) == text


@given(st.sets(st.tuples(st.sampled_from(["n", "gpu", "r1n"]), st.integers(0, 300)), max_size=40))
def test_compress_then_expand_round_trips(items: set[tuple[str, int]]) -> None:
    names = {f"{p}{i}" for p, i in items}
    assert set(expand_hostlist(compress_hostlist(names))) == names
