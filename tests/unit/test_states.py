from pathlib import Path

import pytest

from cmt_slurm import states
from cmt_slurm.errors import Conflict
from cmt_slurm.states import NodeState, Stage

REPO = Path(__file__).resolve().parents[2]

NODE_EDGES = [
    ("unknown", "discovered"),
    ("discovered", "reimaging"),
    ("discovered", "ready"),
    ("ready", "reimaging"),
    ("reimaging", "ready"),
    ("reimaging", "failed"),
    ("failed", "reimaging"),
    ("failed", "ready"),
    ("failed", "discovered"),
]

STAGE_MAIN_EDGES = [
    ("requested", "queued"),
    ("requested", "live"),
    ("requested", "identify"),
    ("queued", "live"),
    ("queued", "identify"),
    ("live", "transfer"),
    ("identify", "transfer"),
    ("transfer", "verify"),
    ("verify", "write"),
    ("write", "grow"),
    ("grow", "identity"),
    ("identity", "kexec"),
    ("identity", "boot"),
    ("kexec", "boot"),
    ("boot", "done"),
]
ACTIVE = [s for s in Stage if s not in (Stage.DONE, Stage.FAILED)]
STAGE_EDGES = STAGE_MAIN_EDGES + [(str(s), "failed") for s in ACTIVE]


def test_node_table_is_exactly_the_documented_edges() -> None:
    got = {(str(a), str(b)) for a, targets in states.NODE_TRANSITIONS.items() for b in targets}
    assert got == set(NODE_EDGES)


def test_stage_table_is_exactly_the_documented_edges() -> None:
    got = {(str(a), str(b)) for a, targets in states.STAGE_TRANSITIONS.items() for b in targets}
    assert got == set(STAGE_EDGES)


@pytest.mark.parametrize(("a", "b"), NODE_EDGES)
def test_legal_node_edges_return_their_reason(a: str, b: str) -> None:
    assert states.check_node_transition(NodeState(a), NodeState(b))


@pytest.mark.parametrize(("a", "b"), STAGE_EDGES)
def test_legal_stage_edges_return_their_reason(a: str, b: str) -> None:
    assert states.check_stage_transition(Stage(a), Stage(b))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("unknown", "ready"),
        ("unknown", "reimaging"),
        ("ready", "ready"),
        ("ready", "failed"),
        ("ready", "discovered"),
        ("reimaging", "reimaging"),
        ("reimaging", "discovered"),
        ("discovered", "failed"),
        ("failed", "unknown"),
    ],
)
def test_illegal_node_edges_raise_conflict_naming_both_ends(a: str, b: str) -> None:
    with pytest.raises(Conflict) as info:
        states.check_node_transition(NodeState(a), NodeState(b))
    assert info.value.message == f"node state {a} -> {b} is not allowed"
    assert info.value.details["from"] == a and info.value.details["to"] == b
    allowed = [str(t) for t in states.NODE_TRANSITIONS[NodeState(a)]]
    assert info.value.details["allowed"] == allowed
    assert info.value.hint is not None and all(t in info.value.hint for t in allowed)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("requested", "transfer"),  # skipping the live boot
        ("live", "identify"),  # identify happens only in discovery
        ("transfer", "write"),  # never write unverified bytes
        ("verify", "transfer"),  # no going back
        ("write", "identity"),
        ("grow", "kexec"),
        ("kexec", "done"),
        ("live", "queued"),  # queueing happens only before the reimager runs
        ("done", "failed"),  # terminal
        ("failed", "requested"),
        ("done", "done"),
        ("transfer", "transfer"),
    ],
)
def test_illegal_stage_edges_raise_conflict(a: str, b: str) -> None:
    with pytest.raises(Conflict, match=f"deployment stage {a} -> {b} is not allowed") as info:
        states.check_stage_transition(Stage(a), Stage(b))
    assert info.value.hint is not None


def test_terminal_stage_hint_says_terminal() -> None:
    with pytest.raises(Conflict) as info:
        states.check_stage_transition(Stage.DONE, Stage.LIVE)
    assert info.value.hint == "from done the next stage can be: none (terminal)"


def test_every_stage_in_the_contract_order() -> None:
    assert [str(s) for s in Stage] == [
        "requested", "queued", "live", "identify", "transfer", "verify", "write",
        "grow", "identity", "kexec", "boot", "done", "failed",
    ]  # fmt: skip
    assert [str(s) for s in NodeState] == ["unknown", "discovered", "ready", "reimaging", "failed"]


def test_slot_stages_are_active() -> None:
    assert states.SLOT_STAGES <= states.ACTIVE_STAGES


def test_diagram_lists_every_edge_but_failed_in_one_line_each() -> None:
    text = states.diagram()
    for a, b in NODE_EDGES + STAGE_MAIN_EDGES:
        assert f"    {a} --> {b}: " in text
    assert "transfer --> failed" not in text
    assert "can also go to `failed`" in text


def test_docs_states_md_matches_the_tables() -> None:
    path = REPO / "docs" / "states.md"
    assert path.read_text() == states.diagram(), "regenerate docs/states.md from states.diagram()"
