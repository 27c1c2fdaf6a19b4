"""Random sequences of everything the front ends can call: the invariants hold after every step."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from provisioner_helpers import CATALOGUE, Clock, lldp, mac, make

from cmt_slurm.errors import CmtError
from cmt_slurm.states import ACTIVE_STAGES, STAGE_TRANSITIONS, NodeState, Stage, check_node_transition
from cmt_slurm.store import Store, deployments, nodes

PORTS = [1, 2, 3]
IMAGES = [i.name for i in CATALOGUE]


class Provisioning(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.TemporaryDirectory()
        self.store = Store.open(f"sqlite:///{Path(self.tmp.name) / 'cmt.db'}")
        self.clock = Clock()
        self.prov = make(self.store, self.clock, max_concurrent_reimages=1, deployment_token_ttl=600)
        self.tokens: dict[int, str] = {}  # deployment id -> last token handed out
        self.node_tokens: dict[str, str] = {}
        self.done = 0

    def teardown(self) -> None:
        self.store.dispose()
        self.tmp.cleanup()

    def _try(self, call: object) -> object:
        try:
            return call() if callable(call) else None
        except CmtError:
            return None  # refused with a documented error: fine, the invariants must still hold

    @rule(port=st.sampled_from(PORTS))
    def register(self, port: int) -> None:
        reg = self._try(lambda: self.prov.register_node([mac(port)], lldp(port)))
        plan = getattr(reg, "plan", None)
        if plan is not None and plan.token:
            self.tokens[plan.deployment] = plan.token
            self.node_tokens[plan.node] = plan.node_token

    @rule(port=st.sampled_from(PORTS), image=st.sampled_from(IMAGES))
    def set_target(self, port: int, image: str) -> None:
        dep = self._try(lambda: self.prov.set_target(f"r07n{port:02d}", image, "admin:p"))
        if dep is not None and getattr(dep, "token", None):
            self.tokens[dep.id] = dep.token  # type: ignore[attr-defined]

    @rule(
        port=st.sampled_from(PORTS), features=st.sampled_from([["os=debian13"], ["libc=2.36"], ["os=rocky9"]])
    )
    def request(self, port: int, features: list[str]) -> None:
        name = f"r07n{port:02d}"
        dep = self._try(lambda: self.prov.request_features(name, features, f"node:{name}"))
        if dep is not None and getattr(dep, "token", None):
            self.tokens[dep.id] = dep.token  # type: ignore[attr-defined]

    @rule(port=st.sampled_from(PORTS))
    def boot(self, port: int) -> None:
        decision = self._try(lambda: self.prov.boot_decision(mac(port)))
        if decision is not None and decision.token and decision.deployment:  # type: ignore[attr-defined]
            self.tokens[decision.deployment.id] = decision.token  # type: ignore[attr-defined]

    @rule(stage=st.sampled_from(list(Stage)), progress=st.none() | st.integers(0, 2000))
    def report(self, stage: Stage, progress: int | None) -> None:
        for dep_id, token in list(self.tokens.items()):
            self._try(lambda: self.prov.report(dep_id, token, stage, progress, "prop"))  # noqa: B023
            plan = self._try(lambda: self.prov.plan(dep_id, token))  # noqa: B023
            if plan is not None:
                self.node_tokens[plan.node] = plan.node_token  # type: ignore[attr-defined]

    @rule(pick=st.integers(0, 5))
    def advance(self, pick: int) -> None:
        """Report a next stage the table allows (so random runs reach the deep stages, and done)."""
        for dep_id, token in list(self.tokens.items()):
            dep = self.prov.get_deployment(dep_id)
            nexts = [
                t for t in STAGE_TRANSITIONS[dep.stage] if t not in (Stage.QUEUED, Stage.DONE, Stage.FAILED)
            ]
            if nexts:
                target = nexts[pick % len(nexts)] if pick < 5 else Stage.FAILED
                self._try(lambda: self.prov.report(dep_id, token, target))  # noqa: B023
            if dep.stage in (Stage.LIVE, Stage.IDENTIFY):
                plan = self._try(lambda: self.prov.plan(dep_id, token))  # noqa: B023
                if plan is not None:
                    self.node_tokens[dep.node] = plan.node_token  # type: ignore[attr-defined]
            if dep.stage in (Stage.KEXEC, Stage.BOOT) and pick % 2:
                self.ready_for(dep.node, dep.image)

    def ready_for(self, name: str, image: str) -> None:
        self._try(lambda: self.prov.node_ready(name, image, self.clock.now, self.node_tokens.get(name)))
        if self.prov.get_node(name).state is NodeState.READY:
            self.done += 1

    @rule(port=st.sampled_from(PORTS), image=st.sampled_from(IMAGES))
    def ready(self, port: int, image: str) -> None:
        name = f"r07n{port:02d}"
        self._try(lambda: self.prov.node_ready(name, image, self.clock.now, self.node_tokens.get(name)))

    @rule(port=st.sampled_from(PORTS))
    def clear(self, port: int) -> None:
        self._try(lambda: self.prov.clear_failed(f"r07n{port:02d}", "admin:p"))

    @rule(seconds=st.sampled_from([1, 60, 700]))
    def time_passes(self, seconds: int) -> None:
        self.clock.tick(seconds)
        self.prov.reap_expired()

    @invariant()
    def reimaging_iff_one_active_deployment(self) -> None:
        with self.store.read() as conn:
            for node in nodes.list_all(conn):
                dep = deployments.active_for_node(conn, node.id)
                assert (node.state is NodeState.REIMAGING) == (dep is not None), (node, dep)
                if dep is not None:
                    assert dep.stage in ACTIVE_STAGES and dep.image == node.target_image
                if node.state is NodeState.FAILED:
                    assert node.reason and node.reason.startswith("cmt: reimage to ")

    @invariant()
    def event_trail_is_a_legal_walk(self) -> None:
        last: dict[str, NodeState] = {}
        stages: dict[int, str | None] = {}
        for e in self.prov.events(limit=1000):
            if e.kind == "node" and e.node:
                source = NodeState(e.from_state or "unknown")
                assert last.get(e.node, NodeState.UNKNOWN) is source, e
                check_node_transition(source, NodeState(e.to_state or ""))
                last[e.node] = NodeState(e.to_state or "")
            if e.kind == "stage" and e.deployment is not None:
                assert stages.get(e.deployment) == e.from_state, e
                stages[e.deployment] = e.to_state
        for name, state in last.items():
            assert self.prov.get_node(name).state is state


TestProvisioning = Provisioning.TestCase
TestProvisioning.settings = settings(
    max_examples=30, stateful_step_count=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def test_the_rules_can_walk_a_reimage_to_ready() -> None:
    """The same rules, scripted: proves ``advance`` reaches the deep stages the random runs explore."""
    m = Provisioning()
    try:
        m.register(1)
        m.set_target(1, "debian13-2026.11")
        m.boot(1)
        for _ in range(10):
            m.advance(1)  # odd pick: also checks in from the new OS once at kexec/boot
            m.reimaging_iff_one_active_deployment()
            m.event_trail_is_a_legal_walk()
        assert m.done == 1
    finally:
        m.teardown()
