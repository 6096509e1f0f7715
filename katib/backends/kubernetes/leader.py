"""Leader election on a ``coordination.k8s.io/v1`` Lease, as client-go does it for
controller-runtime (``k8s.io/client-go/tools/leaderelection``).

Candidates share one Lease. Its holder writes ``spec.renewTime`` every ``retry_period``;
the others read it every ``retry_period`` and take it over only after they have seen the
same record, unchanged, for the record's ``leaseDurationSeconds``. Expiry is judged on the
reader's own monotonic clock from the moment it first saw the record, never by comparing
the holder's ``renewTime`` with the local clock, so clock skew between nodes does not
matter. Every write is a PUT conditional on the resourceVersion that was read (or a
create): of two candidates racing for an expired or missing lease, the API server lets one
win and answers the other 409.

The holder gives up (``LeaderElector.keep_renewing`` returns False) when it cannot renew
within ``renew_deadline`` or when it reads the lease and finds another holder. Because
``renew_deadline`` is shorter than ``lease_duration``, a holder that cannot reach the API
server stops before anyone else may start. ``release`` empties ``holderIdentity`` so a
successor takes over at its next read instead of after the lease duration.

The Lease goes out as plain JSON through ``Kube`` (see ``client``), not through the
``kubernetes.leaderelection`` package: that one builds its API objects on the client's
global default configuration (ignoring ``--kubeconfig``/``--context``), loops in
``acquire`` with no way to stop, never releases, refuses sub-second retry periods with
``sys.exit`` and does not count ``leaseTransitions``.
"""

from __future__ import annotations

import copy
import datetime
import logging
import math
import os
import random
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from katib.backends.kubernetes.client import ApiError, Kube, Resource

__all__ = ["LEASES", "LeaderElectionConfig", "LeaderElector", "default_identity"]

log = logging.getLogger(__name__)

LEASES = Resource("coordination.k8s.io", "v1", "leases", "Lease")
# client-go's JitterFactor: candidates spread their reads over [retry, 2.2 * retry) so
# they do not all hit the API server in step.
_JITTER = 1.2


def default_identity() -> str:
    """``<pod or host name>_<uuid>``, as controller-runtime. The random part keeps two
    controllers on one host (or a container restarted in the same pod, whose predecessor
    may still hold the lease) from taking each other for themselves."""
    base = os.environ.get("POD_NAME") or socket.gethostname() or "katib-controller"
    return f"{base}_{uuid.uuid4()}"


def _micro_time(t: float) -> str:
    # metav1.MicroTime: RFC 3339 with microseconds, in UTC.
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class LeaderElectionConfig:
    """Where the lease lives, who we are, and how long things take (seconds).

    Defaults are controller-runtime's: a holder that has not renewed for 15 s is presumed
    gone; it gives up itself after failing to renew for 10 s; everyone retries every 2 s.
    """

    namespace: str
    name: str = "katib-controller-lock"
    identity: str = field(default_factory=default_identity)
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not self.namespace or not self.name or not self.identity:
            raise ValueError("leader election needs a lease namespace, a lease name and an identity")
        if self.retry_period <= 0:
            raise ValueError(f"retry period ({self.retry_period}s) must be positive")
        # As client-go checks: the holder must give up before others may take over, and must
        # have time for more than one attempt within its deadline.
        if self.lease_duration <= self.renew_deadline:
            raise ValueError(f"lease duration ({self.lease_duration}s) must be longer than the renew deadline "
                             f"({self.renew_deadline}s), so a holder that cannot renew stops before another "
                             "controller may start")
        if self.renew_deadline <= _JITTER * self.retry_period:
            raise ValueError(f"renew deadline ({self.renew_deadline}s) must be longer than {_JITTER} x the retry "
                             f"period ({self.retry_period}s)")


class LeaderElector:
    """One candidate. ``acquire`` blocks until it holds the lease; ``keep_renewing`` renews
    it until told to stop or until it is lost; ``leading`` says whether it may act now.

    Thread-safe in the way it is used: one thread runs acquire/keep_renewing/release,
    any thread reads ``leading``.
    """

    def __init__(self, kube: Kube, config: LeaderElectionConfig,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.kube = kube
        self.config = config
        self._clock = clock
        self._lock = threading.Lock()
        self._lease: dict[str, Any] | None = None  # the last Lease read or written
        self._observed_spec: dict[str, Any] | None = None
        self._observed_at = 0.0  # local clock when _observed_spec was first seen
        self._renewed_at: float | None = None  # local clock when our last successful write was sent
        self._lost = False

    @property
    def identity(self) -> str:
        return self.config.identity

    @property
    def holder(self) -> str:
        """The holder in the lease as last read ("" when none)."""
        return str((self._observed_spec or {}).get("holderIdentity") or "")

    @property
    def leading(self) -> bool:
        """True while this candidate holds the lease for sure: it was written by us less
        than ``lease_duration`` ago (by our own clock, from before the write was sent) and
        not given up since. Checked before the controller writes anything."""
        with self._lock:
            return (not self._lost and self._renewed_at is not None
                    and self._clock() < self._renewed_at + self.config.lease_duration)

    # -- one attempt --------------------------------------------------------------------------
    def try_acquire_or_renew(self, timeout: float | None = None) -> bool:
        """One read and at most one write: True when we hold the lease afterwards.

        client-go's ``tryAcquireOrRenew``: create the lease if there is none; otherwise
        leave it alone while someone else holds it and it has not expired; otherwise write
        ourselves in, conditional on the resourceVersion just read.
        """
        cfg = self.config
        # A request that hangs must not outlive the renew deadline (the default API timeout
        # is 30 s): the holder has to know it failed in time to stop before others start.
        sent = self._clock()
        until = sent + min(timeout if timeout is not None else cfg.renew_deadline, cfg.renew_deadline)

        def left() -> float:
            return max(0.1, until - self._clock())

        now = _micro_time(time.time())
        path = LEASES.path(cfg.namespace, cfg.name)
        try:
            lease = self.kube.request("GET", path, timeout=left())
        except ApiError as exc:
            if not exc.not_found:
                log.warning("leader election: cannot read lease %s/%s: %s", cfg.namespace, cfg.name, exc)
                return False
            lease = None
        duration = math.ceil(cfg.lease_duration)  # the field is whole seconds
        if lease is None:
            body = {"apiVersion": LEASES.api_version, "kind": LEASES.kind,
                    "metadata": {"name": cfg.name, "namespace": cfg.namespace},
                    "spec": {"holderIdentity": cfg.identity, "leaseDurationSeconds": duration,
                             "acquireTime": now, "renewTime": now, "leaseTransitions": 0}}
            return self._write(lambda: self.kube.request("POST", LEASES.path(cfg.namespace), body=body,
                                                         timeout=left()), sent)

        # Seen when the answer came, not when it was asked for: the record may have been
        # written in between, and an early mark would let us take over too soon.
        seen = self._clock()
        spec = lease.get("spec") or {}
        self._observe(lease, seen)
        holder = str(spec.get("holderIdentity") or "")
        if holder and holder != cfg.identity and not self._expired(seen):
            return False
        new = copy.deepcopy(lease)
        transitions = int(spec.get("leaseTransitions") or 0)
        new["spec"] = {
            "holderIdentity": cfg.identity, "leaseDurationSeconds": duration,
            "acquireTime": spec.get("acquireTime") if holder == cfg.identity else now,
            "renewTime": now,
            "leaseTransitions": transitions if holder == cfg.identity else transitions + 1,
        }
        if holder != cfg.identity:
            log.info("leader election: taking over lease %s/%s from %s", cfg.namespace, cfg.name,
                     holder or "nobody (released)")
        return self._write(lambda: self.kube.request("PUT", path, body=new, timeout=left()), sent)

    def _observe(self, lease: dict[str, Any], now: float) -> None:
        spec = lease.get("spec") or {}
        with self._lock:
            self._lease = lease
            if spec != self._observed_spec:
                # A changed record (a renewal, a new holder) restarts the expiry clock.
                self._observed_spec = copy.deepcopy(spec)
                self._observed_at = now

    def _expired(self, now: float) -> bool:
        # The holder's own leaseDurationSeconds: it may be configured differently from us.
        spec = self._observed_spec or {}
        duration = float(spec.get("leaseDurationSeconds") or self.config.lease_duration)
        return now >= self._observed_at + duration

    def _write(self, call: Callable[[], Any], sent: float) -> bool:
        cfg = self.config
        try:
            written: dict[str, Any] = call()
        except ApiError as exc:
            if exc.conflict:
                log.info("leader election: another candidate wrote lease %s/%s first", cfg.namespace, cfg.name)
            else:
                log.warning("leader election: cannot write lease %s/%s: %s", cfg.namespace, cfg.name, exc)
            return False
        with self._lock:
            self._lease = written
            self._observed_spec = copy.deepcopy(written.get("spec") or {})
            self._observed_at = sent
            self._renewed_at = sent
            self._lost = False
        return True

    # -- loops --------------------------------------------------------------------------------
    def _sleep(self, stop: threading.Event) -> bool:
        """Wait a jittered retry period; True if ``stop`` was set meanwhile."""
        return stop.wait(self.config.retry_period * (1.0 + random.random() * _JITTER))

    def acquire(self, stop: threading.Event) -> bool:
        """Block until this candidate holds the lease (True) or ``stop`` is set (False)."""
        cfg = self.config
        log.info("leader election: %s waits for lease %s/%s", cfg.identity, cfg.namespace, cfg.name)
        reported = ""
        while not stop.is_set():
            if self.try_acquire_or_renew():
                log.info("leader election: %s now holds lease %s/%s", cfg.identity, cfg.namespace, cfg.name)
                return True
            if self.holder and self.holder != reported:
                reported = self.holder
                log.info("leader election: lease %s/%s is held by %s", cfg.namespace, cfg.name, reported)
            if self._sleep(stop):
                break
        return False

    def keep_renewing(self, stop: threading.Event) -> bool:
        """Renew every retry period until ``stop`` is set (True) or the lease is lost
        (False): not renewed within ``renew_deadline``, or found held by someone else."""
        cfg = self.config
        while not stop.wait(cfg.retry_period):
            deadline = self._clock() + cfg.renew_deadline
            while True:
                if self.try_acquire_or_renew(timeout=deadline - self._clock()):
                    break
                if self.holder and self.holder != cfg.identity:
                    # Someone else wrote the lease: renewing can no longer succeed, and
                    # they may already be acting. Stop now rather than at the deadline.
                    return self._give_up(f"it is now held by {self.holder}")
                if self._clock() + cfg.retry_period >= deadline:
                    return self._give_up(f"not renewed within the renew deadline ({cfg.renew_deadline}s)")
                if stop.wait(cfg.retry_period):
                    return True
        return True

    def _give_up(self, why: str) -> bool:
        with self._lock:
            self._lost = True
        log.error("leader election: %s lost lease %s/%s: %s", self.config.identity, self.config.namespace,
                  self.config.name, why)
        return False

    def release(self) -> bool:
        """Hand the lease back (clean shutdown): empty ``holderIdentity`` so a waiting
        candidate takes over at its next read. Conditional on the resourceVersion we last
        wrote: a lease someone else has taken since is left alone. True if released."""
        cfg = self.config
        with self._lock:
            lease = copy.deepcopy(self._lease) if self._lease is not None else None
            ours = self._renewed_at is not None and not self._lost
            self._lost = True  # from here on we act no more, released or not
        if lease is None or not ours or (lease.get("spec") or {}).get("holderIdentity") != cfg.identity:
            return False
        now = _micro_time(time.time())
        spec = lease.get("spec") or {}
        # client-go's release: no holder, a 1 s duration, the transitions count kept.
        lease["spec"] = {"leaseDurationSeconds": 1, "acquireTime": now, "renewTime": now,
                         "leaseTransitions": int(spec.get("leaseTransitions") or 0)}
        try:
            self.kube.request("PUT", LEASES.path(cfg.namespace, cfg.name), body=lease, timeout=cfg.renew_deadline)
        except ApiError as exc:
            log.warning("leader election: could not release lease %s/%s: %s", cfg.namespace, cfg.name, exc)
            return False
        log.info("leader election: %s released lease %s/%s", cfg.identity, cfg.namespace, cfg.name)
        return True
