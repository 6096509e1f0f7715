"""Leader election on a coordination.k8s.io Lease against the real API server.

First the lease logic itself (in-process candidates): create, renew, wait for expiry, races
decided by the API server's 409, release, giving up on a takeover. Then whole
``katib controller --leader-elect`` processes: of two, only the leader creates trials; a
SIGKILLed leader is replaced after about the lease duration; a SIGTERMed one hands over at
once; one that loses its lease, or cannot reach the API server before the renew deadline,
exits 1. Durations are short (lease 3 s, renew 2 s, retry 0.5 s) so the tests run fast.
"""

from __future__ import annotations

import datetime
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from katib.backends.kubernetes.client import ApiError, Kube, Resource
from katib.backends.kubernetes.leader import LEASES, LeaderElectionConfig, LeaderElector
from katib.backends.kubernetes.resources import EXPERIMENTS
from tests.kubernetes.support import condition, finished, running_controller, trial_state, trials_of, wait_for
from tests.kubernetes.test_random_job import experiment
from tests.kubernetes.test_restart import SLOW_TRAIN

pytestmark = pytest.mark.k8s

JOBS = Resource("batch", "v1", "jobs", "Job")
LOCK = "katib-test-lock"
REPO = Path(__file__).resolve().parents[2]
FAST = ("3", "2", "0.5")  # lease duration, renew deadline, retry period (seconds)


def config(ns: str, identity: str, lease: float = 3.0, renew: float = 2.0, retry: float = 0.5) -> LeaderElectionConfig:
    return LeaderElectionConfig(namespace=ns, name=LOCK, identity=identity, lease_duration=lease,
                                renew_deadline=renew, retry_period=retry)


def read_lease(kube: Kube, ns: str) -> dict[str, Any] | None:
    return kube.get_or_none(LEASES, ns, LOCK)


def lease_spec(kube: Kube, ns: str) -> dict[str, Any]:
    lease = read_lease(kube, ns)
    assert lease is not None, "no lease"
    return dict(lease["spec"])


def lease_version(kube: Kube, ns: str) -> str:
    lease = read_lease(kube, ns)
    assert lease is not None, "no lease"
    return str(lease["metadata"]["resourceVersion"])


def holder(kube: Kube, ns: str) -> str:
    """The holder's name without the random suffix ("" when nobody holds the lease)."""
    lease = read_lease(kube, ns)
    identity = str(((lease or {}).get("spec") or {}).get("holderIdentity") or "")
    return identity.split("_")[0]


def take_over(kube: Kube, ns: str, identity: str = "intruder") -> dict[str, Any]:
    """Write ``identity`` into the lease for an hour, as another controller that won would."""
    while True:
        lease = read_lease(kube, ns)
        assert lease is not None
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        lease["spec"].update(holderIdentity=identity, leaseDurationSeconds=3600, acquireTime=now, renewTime=now)
        try:
            return kube.replace(LEASES, lease)
        except ApiError as exc:
            if not exc.conflict:  # the holder renewed in between: read it again
                raise


@contextmanager
def renewing(elector: LeaderElector) -> Iterator[tuple[threading.Event, dict[str, Any]]]:
    """``keep_renewing`` on a thread; the dict gets ``result`` and ``at`` when it returns."""
    stop = threading.Event()
    out: dict[str, Any] = {}

    def run() -> None:
        out["result"] = elector.keep_renewing(stop)
        out["at"] = time.monotonic()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        yield stop, out
    finally:
        stop.set()
        t.join(10)


# ---- the lease ------------------------------------------------------------------------------------

def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="longer than the renew deadline"):
        LeaderElectionConfig(namespace="ns", lease_duration=10, renew_deadline=10)
    with pytest.raises(ValueError, match="retry"):
        LeaderElectionConfig(namespace="ns", renew_deadline=2, retry_period=2)
    with pytest.raises(ValueError, match="namespace"):
        LeaderElectionConfig(namespace="")
    a, b = LeaderElectionConfig(namespace="ns"), LeaderElectionConfig(namespace="ns")
    assert (a.lease_duration, a.renew_deadline, a.retry_period, a.name) == (15, 10, 2, "katib-controller-lock")
    assert a.identity != b.identity  # two controllers on one host are two candidates


def test_first_candidate_creates_the_lease_and_renews_it(kube: Kube, k8s_namespace: str) -> None:
    ns = k8s_namespace
    a = LeaderElector(kube, config(ns, "a"))
    assert not a.leading
    assert a.try_acquire_or_renew()
    assert a.leading
    first = read_lease(kube, ns)
    assert first is not None
    spec = first["spec"]
    assert spec["holderIdentity"] == "a" and spec["leaseDurationSeconds"] == 3
    assert spec["leaseTransitions"] == 0 and spec["acquireTime"] == spec["renewTime"]
    with renewing(a) as (_, out):
        wait_for("a renewal", lambda: lease_spec(kube, ns)["renewTime"] != spec["renewTime"],
                 timeout=5, interval=0.1)
        assert "result" not in out  # still renewing
    renewed = lease_spec(kube, ns)
    assert renewed["holderIdentity"] == "a" and renewed["acquireTime"] == spec["acquireTime"]
    assert renewed["leaseTransitions"] == 0 and renewed["renewTime"] > spec["renewTime"]


def test_a_candidate_takes_over_only_after_the_lease_expired(kube: Kube, k8s_namespace: str) -> None:
    ns = k8s_namespace
    a = LeaderElector(kube, config(ns, "a"))
    b = LeaderElector(kube, config(ns, "b"))
    assert a.try_acquire_or_renew()
    acquired = lease_spec(kube, ns)["acquireTime"]
    with renewing(a) as (stop, _):
        # Longer than the lease duration: renewals keep b out all along.
        until = time.monotonic() + 4.5
        while time.monotonic() < until:
            assert not b.try_acquire_or_renew()
            assert b.holder == "a" and not b.leading
            time.sleep(0.25)
        stop.set()  # a stops renewing without releasing, as if it hung or was killed
    stopped = time.monotonic()
    wait_for("b to take over", b.try_acquire_or_renew, timeout=10, interval=0.1)
    waited = time.monotonic() - stopped
    # b waited out a's lease (3 s from a's last renewal, at most one retry period before the stop).
    assert 2.0 <= waited <= 5.0, waited
    # The safety that matters: once b holds the lease, a no longer thinks it does.
    assert b.leading and not a.leading
    spec = lease_spec(kube, ns)
    assert spec["holderIdentity"] == "b" and spec["leaseTransitions"] == 1 and spec["acquireTime"] != acquired


def test_racing_candidates_only_one_wins(kube: Kube, k8s_namespace: str) -> None:
    """The API server decides a race: a create or a resourceVersion-conditional update by one
    candidate makes the others' writes fail with 409."""
    ns = k8s_namespace

    def race(electors: list[LeaderElector]) -> list[str]:
        barrier = threading.Barrier(len(electors))
        won: list[str] = []

        def run(e: LeaderElector) -> None:
            barrier.wait()
            if e.try_acquire_or_renew():
                won.append(e.identity)

        threads = [threading.Thread(target=run, args=(e,)) for e in electors]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        return won

    # No lease yet: all of them try to create it.
    first = [LeaderElector(kube, config(ns, f"first-{i}")) for i in range(6)]
    won = race(first)
    assert len(won) == 1, won
    assert holder(kube, ns) == won[0]
    assert [e.identity for e in first if e.leading] == won

    # An expired lease: all of them try to update it from the same resourceVersion.
    second = [LeaderElector(kube, config(ns, f"second-{i}")) for i in range(6)]
    for e in second:
        assert not e.try_acquire_or_renew()  # each starts its expiry clock on what it saw
    time.sleep(3.2)  # the lease duration, with nobody renewing
    won = race(second)
    assert len(won) == 1, won
    assert holder(kube, ns) == won[0]
    assert lease_spec(kube, ns)["leaseTransitions"] == 1


def test_release_hands_over_at_once_but_never_clobbers_a_successor(kube: Kube, k8s_namespace: str) -> None:
    ns = k8s_namespace
    a = LeaderElector(kube, config(ns, "a", lease=30, renew=20))
    b = LeaderElector(kube, config(ns, "b", lease=30, renew=20))
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    assert a.release()
    assert not a.leading
    spec = lease_spec(kube, ns)
    assert not spec.get("holderIdentity") and spec["leaseDurationSeconds"] == 1
    assert b.try_acquire_or_renew()  # at once, not after the 30 s lease
    assert holder(kube, ns) == "b"
    assert not a.release()  # released already: nothing more to do
    assert holder(kube, ns) == "b"
    # b has not noticed that someone took the lease over: its release, conditional on the
    # resourceVersion b last wrote, is refused (409) and leaves the new holder in place.
    take_over(kube, ns, "c")
    assert b.leading  # b still believes it holds the lease, so its release is really sent
    assert not b.release()
    assert holder(kube, ns) == "c"


def test_a_leader_that_finds_another_holder_gives_up_at_once(kube: Kube, k8s_namespace: str) -> None:
    ns = k8s_namespace
    a = LeaderElector(kube, config(ns, "a", lease=30, renew=20))
    assert a.try_acquire_or_renew()
    with renewing(a) as (_, out):
        taken = time.monotonic()
        written = take_over(kube, ns)
        wait_for("a to give up", lambda: "result" in out, timeout=10, interval=0.05)
    assert out["result"] is False and not a.leading
    # Within a couple of retry periods, not after the 20 s renew deadline.
    assert out["at"] - taken < 3.0
    # And it did not fight back: the intruder's write is the last one.
    assert lease_version(kube, ns) == written["metadata"]["resourceVersion"]


def test_a_controller_that_lost_the_lease_creates_no_more_trials(kube: Kube, k8s_namespace: str) -> None:
    """The in-process fence: even before its process exits, a controller whose lease is gone
    does not reconcile or create trials (``ControllerOptions.leading``)."""
    ns = k8s_namespace
    elector = LeaderElector(kube, config(ns, "a"))
    assert elector.try_acquire_or_renew()
    kube.create(EXPERIMENTS, ns, experiment("fenced", ns, maxTrialCount=20, parallelTrialCount=2))
    with renewing(elector) as (_, out), running_controller(kube, ns, leading=lambda: elector.leading):
        wait_for("the leader to create trials", lambda: len(trials_of(kube, ns, "fenced")) >= 2, timeout=60)
        take_over(kube, ns)
        wait_for("the lease to be given up", lambda: "result" in out, timeout=10, interval=0.05)
        time.sleep(0.5)  # a create already sent when the lease went may still land
        before = {t["metadata"]["name"] for t in trials_of(kube, ns, "fenced")}
        # The trials run to completion; a leading controller would now start the next ones.
        wait_for("the trials' Jobs to complete", lambda: all(
            (j.get("status") or {}).get("succeeded") for j in kube.list(JOBS, ns)[0]), timeout=60)
        time.sleep(2.0)  # several poll intervals (0.3 s) of a controller that still runs
        after = {t["metadata"]["name"] for t in trials_of(kube, ns, "fenced")}
    assert out["result"] is False
    assert after == before, after - before
    assert condition(kube.get(EXPERIMENTS, ns, "fenced"), "Succeeded") is None


# ---- katib controller --leader-elect --------------------------------------------------------------

class Proc:
    """A ``katib controller --leader-elect`` process named ``name`` (its POD_NAME)."""

    def __init__(self, name: str, kubeconfig: str, ns: str, log: Path, timings: tuple[str, str, str] = FAST) -> None:
        self.name = name
        self.log = log
        env = dict(os.environ, POD_NAME=name)
        env.pop("POD_NAMESPACE", None)
        lease, renew, retry = timings
        out = open(log, "ab")  # noqa: SIM115 - handed to the child
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "katib.cli", "controller", "--kubeconfig", kubeconfig, "--namespace", ns,
             "--poll-interval", "0.3", "--resync-period", "3", "-v",
             "--leader-elect", "--leader-elect-namespace", ns, "--leader-elect-id", LOCK,
             "--leader-elect-lease-duration", lease, "--leader-elect-renew-deadline", renew,
             "--leader-elect-retry-period", retry],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=str(REPO))
        out.close()

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def created(self) -> list[str]:
        return [line for line in self.text().splitlines() if ": created trial " in line]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(10)
            raise AssertionError(f"{self.name} did not stop:\n{self.text()[-3000:]}") from None

    def exited(self) -> int | None:
        return self.popen.poll()


@pytest.fixture
def controllers(k8s_control_plane: Any, k8s_namespace: str, tmp_path: Path) -> Iterator[Any]:
    """Start controller processes with ``start(name)``; all are killed after the test."""
    started: list[Proc] = []

    def start(name: str, kubeconfig: str | None = None, timings: tuple[str, str, str] = FAST) -> Proc:
        p = Proc(name, kubeconfig or str(k8s_control_plane.kubeconfig_path), k8s_namespace,
                 tmp_path / f"{name}.log", timings)
        started.append(p)
        return p

    yield start
    for p in started:
        if p.exited() is None:
            p.popen.kill()
            p.popen.wait(10)


def leads(kube: Kube, ns: str, name: str) -> Any:
    return lambda: holder(kube, ns) == name


def test_of_two_controllers_only_the_leader_creates_trials(kube: Kube, k8s_namespace: str,
                                                           controllers: Any) -> None:
    ns = k8s_namespace
    a, b = controllers("ctl-a"), controllers("ctl-b")  # started together: they race for the lease
    leader_name = wait_for("a leader", lambda: holder(kube, ns), timeout=30, interval=0.1)
    leader, follower = (a, b) if leader_name == "ctl-a" else (b, a)
    wait_for("the follower to see the leader", lambda: "is held by" in follower.text(), timeout=30)
    kube.create(EXPERIMENTS, ns, experiment("two", ns, maxTrialCount=6, parallelTrialCount=3))
    exp = wait_for("the experiment to finish", finished(kube, ns, "two"), timeout=180)
    assert leader.stop() == 0 and follower.stop() == 0

    succeeded = condition(exp, "Succeeded")
    assert succeeded is not None and succeeded["reason"] == "ExperimentMaxTrialsReached", exp["status"]
    trials = trials_of(kube, ns, "two")
    names = [t["metadata"]["name"] for t in trials]
    assert len(names) == len(set(names)) == 6
    assert Counter(trial_state(t) for t in trials) == {"Succeeded": 6}
    assert len(leader.created()) == 6, leader.text()[-3000:]
    assert follower.created() == [], follower.text()[-3000:]


def test_a_killed_leader_is_replaced_after_the_lease_duration(kube: Kube, k8s_namespace: str,
                                                              controllers: Any) -> None:
    ns = k8s_namespace
    a = controllers("ctl-a")
    wait_for("ctl-a to lead", leads(kube, ns, "ctl-a"), timeout=30, interval=0.1)
    b = controllers("ctl-b")
    wait_for("ctl-b to wait", lambda: "is held by" in b.text(), timeout=30)
    body = experiment("killed", ns, maxTrialCount=4, parallelTrialCount=1)
    body["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["command"][2] = SLOW_TRAIN
    kube.create(EXPERIMENTS, ns, body)
    wait_for("ctl-a to create a trial", lambda: trials_of(kube, ns, "killed"), timeout=60, interval=0.1)
    # The trial is in the API server a moment before ctl-a logs it: kill only once it has, so
    # that the count below sees every trial ctl-a created.
    wait_for("ctl-a to log its trial", a.created, timeout=30, interval=0.05)

    a.stop(signal.SIGKILL)  # no release: the lease must run out
    killed = time.monotonic()
    wait_for("ctl-b to take over", leads(kube, ns, "ctl-b"), timeout=20, interval=0.05)
    waited = time.monotonic() - killed
    # About the lease duration (3 s) after a's last renewal (up to 0.5 s before the kill),
    # plus up to one jittered retry period (1.1 s) — not before the lease ran out.
    assert 2.0 <= waited <= 6.0, waited

    exp = wait_for("the experiment to finish under ctl-b", finished(kube, ns, "killed"), timeout=180)
    assert b.stop() == 0
    succeeded = condition(exp, "Succeeded")
    assert succeeded is not None and succeeded["reason"] == "ExperimentMaxTrialsReached", exp["status"]
    names = [t["metadata"]["name"] for t in trials_of(kube, ns, "killed")]
    assert len(names) == len(set(names)) == 4
    assert b.created(), b.text()[-3000:]
    assert len(a.created()) + len(b.created()) == 4


def test_a_stopped_leader_releases_the_lease_and_the_standby_takes_over_at_once(
        kube: Kube, k8s_namespace: str, controllers: Any) -> None:
    ns = k8s_namespace
    slow = ("10", "6", "0.5")  # a 10 s lease: a handover without release would take that long
    a = controllers("ctl-a", timings=slow)
    wait_for("ctl-a to lead", leads(kube, ns, "ctl-a"), timeout=30, interval=0.1)
    b = controllers("ctl-b", timings=slow)
    wait_for("ctl-b to wait", lambda: "is held by" in b.text(), timeout=30)
    body = experiment("handover", ns, maxTrialCount=4, parallelTrialCount=1)
    body["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["command"][2] = SLOW_TRAIN
    kube.create(EXPERIMENTS, ns, body)
    wait_for("ctl-a to create a trial", lambda: trials_of(kube, ns, "handover"), timeout=60, interval=0.1)

    stopped = time.monotonic()
    assert a.stop(signal.SIGTERM) == 0, a.text()[-3000:]
    assert "released lease" in a.text()
    wait_for("ctl-b to take over", leads(kube, ns, "ctl-b"), timeout=20, interval=0.05)
    assert time.monotonic() - stopped < 5.0  # well inside the 10 s lease
    assert lease_spec(kube, ns)["leaseTransitions"] == 1

    exp = wait_for("the experiment to finish under ctl-b", finished(kube, ns, "handover"), timeout=180)
    assert b.stop() == 0
    assert condition(exp, "Succeeded") is not None
    names = [t["metadata"]["name"] for t in trials_of(kube, ns, "handover")]
    assert len(names) == len(set(names)) == 4
    assert len(a.created()) + len(b.created()) == 4
    assert "released lease" in b.text()
    assert not lease_spec(kube, ns).get("holderIdentity")


def test_a_controller_whose_lease_is_taken_exits_1(kube: Kube, k8s_namespace: str, controllers: Any) -> None:
    ns = k8s_namespace
    a = controllers("ctl-a")
    wait_for("ctl-a to lead", leads(kube, ns, "ctl-a"), timeout=30, interval=0.1)
    taken = time.monotonic()
    written = take_over(kube, ns)
    wait_for("ctl-a to exit", lambda: a.exited() is not None, timeout=15, interval=0.05)
    assert a.exited() == 1, a.text()[-3000:]
    assert time.monotonic() - taken < 5.0
    assert "lost lease" in a.text() and "intruder" in a.text()
    assert lease_version(kube, ns) == written["metadata"]["resourceVersion"]


class Blackhole:
    """A TCP forwarder to the API server that can be cut: connections are dropped and new
    ones closed at once, as when a node loses the network."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.cut = False
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.address = self.listener.getsockname()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            if self.cut:
                conn.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            except OSError:
                conn.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._conns |= {conn, upstream}
            for src, dst in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def set_cut(self, cut: bool) -> None:
        self.cut = cut
        if cut:
            with self._lock:
                conns, self._conns = self._conns, set()
            for s in conns:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def close(self) -> None:
        self.set_cut(True)
        self.listener.close()


def test_a_leader_cut_off_from_the_api_server_exits_before_its_lease_runs_out(
        kube: Kube, k8s_namespace: str, k8s_control_plane: Any, controllers: Any, tmp_path: Path) -> None:
    ns = k8s_namespace
    proxy = Blackhole(k8s_control_plane.apiserver_port)
    try:
        cfg = yaml.safe_load(Path(k8s_control_plane.kubeconfig_path).read_text())
        for cluster in cfg["clusters"]:
            cluster["cluster"]["server"] = f"https://127.0.0.1:{proxy.address[1]}"
        kubeconfig = tmp_path / "proxied.kubeconfig"
        kubeconfig.write_text(yaml.safe_dump(cfg))
        a = controllers("ctl-a", str(kubeconfig), timings=("6", "4", "0.5"))
        wait_for("ctl-a to lead", leads(kube, ns, "ctl-a"), timeout=30, interval=0.1)
        # Cut only once it runs: a controller that cannot reach the API server while it
        # starts fails to start, which is another story.
        wait_for("ctl-a to start", lambda: "controller started" in a.text(), timeout=30, interval=0.1)
        identity = lease_spec(kube, ns)["holderIdentity"]

        # A blip shorter than the renew deadline is ridden out: same holder, renewing again.
        proxy.set_cut(True)
        time.sleep(1.0)
        proxy.set_cut(False)
        before = lease_spec(kube, ns)["renewTime"]
        wait_for("a renewal after the blip",
                 lambda: lease_spec(kube, ns)["renewTime"] != before, timeout=5, interval=0.1)
        assert a.exited() is None, a.text()[-3000:]
        assert lease_spec(kube, ns)["holderIdentity"] == identity

        # Cut for good: it gives up at the renew deadline (4 s), before the 6 s lease runs out
        # and another controller could start.
        proxy.set_cut(True)
        cut = time.monotonic()
        wait_for("ctl-a to exit", lambda: a.exited() is not None, timeout=20, interval=0.05)
        assert a.exited() == 1, a.text()[-3000:]
        assert "renew deadline" in a.text()
        assert time.monotonic() - cut < 4.0 + 0.5 + 3.0  # deadline + a retry + process exit
    finally:
        proxy.close()


def test_leader_elect_outside_a_cluster_needs_the_lease_namespace() -> None:
    env = {k: v for k, v in os.environ.items() if k != "POD_NAMESPACE"}
    proc = subprocess.run([sys.executable, "-m", "katib.cli", "controller", "--leader-elect"],
                          capture_output=True, text=True, env=env, cwd=str(REPO), timeout=60)
    assert proc.returncode == 2
    assert "--leader-elect-namespace" in proc.stderr
