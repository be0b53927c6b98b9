"""Everything the process counts, declared in one place.

`/healthz` shows the counts and `/metrics` exports them (web/_metrics.py); each has one
name here, bumped as an attribute, so a typo is an error rather than a new key. Counting
is an integer addition: fan-out counts once per block, never per client.
"""

from __future__ import annotations

from bisect import bisect_left

__all__ = ["Counters", "Histogram"]


class Histogram:
    """Observations counted into fixed buckets (upper bounds, in seconds), with their sum."""

    __slots__ = ("bounds", "counts", "total", "count")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        """Per bucket (not cumulative); the last one is above every bound."""
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value
        self.count += 1


_PUBLISH_BOUNDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_FANOUT_BOUNDS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5)


class Counters:
    """Counts since the process started; `/healthz` reports the ones that moved."""

    __slots__ = (
        "streams_opened", "streams_refused", "messages", "slow_clients_cut", "connections_cut_pending",
        "auth_unavailable", "refused", "deliveries", "sent_bytes", "refused_streams", "publishes", "resumes",
        "publish_seconds", "fanout_seconds", "published_events", "http2_cuts",
    )  # fmt: skip

    def __init__(self) -> None:
        self.streams_opened = 0
        """Streams registered with the hub."""
        self.streams_refused = 0
        """Stream requests answered with retry: (full, draining, broker down, per-address limits)."""
        self.refused_streams: dict[str, int] = {}
        """The same, by reason."""
        self.messages = 0
        """Messages the broker handed to the hub."""
        self.deliveries = 0
        """Events written to clients (live and replayed)."""
        self.sent_bytes = 0
        """Bytes of those events."""
        self.slow_clients_cut = 0
        """Streams cut because their queue passed --max-queue."""
        self.connections_cut_pending = 0
        """Connections that were not streams, cut past --max-pending."""
        self.auth_unavailable = 0
        """Streams sent away with retry: because the authorization callback did not answer."""
        self.refused: dict[str, int] = {}
        """Requests denied, by reason (`unauthenticated`, `forbidden`)."""
        self.publishes: dict[str, int] = {}
        """HTTP publishes (a batch is one) by outcome (`ok`, `unreplicated`: 202, `refused`, `failed`)."""
        self.published_events = 0
        """Events published over HTTP (a batch counts each)."""
        self.resumes: dict[str, int] = {}
        """Streams that resumed, by outcome (`complete`, `lost`: with sse-lost, `ahead`, `failed`)."""
        self.publish_seconds = Histogram(_PUBLISH_BOUNDS)
        """From a publish's request to the broker's confirmation."""
        self.fanout_seconds = Histogram(_FANOUT_BOUNDS)
        """Handing one read's messages to every listening stream."""
        self.http2_cuts: dict[str, int] = {}
        """HTTP/2 connections cut for what they sent, by reason (`protocol_error`, `control_flood`)."""

    def refuse(self, reason: str) -> None:
        """Count one request denied for `reason`."""
        self.refused[reason] = self.refused.get(reason, 0) + 1

    def refuse_stream(self, reason: str) -> None:
        """Count one stream sent away with retry: for `reason`."""
        self.streams_refused += 1
        self.refused_streams[reason] = self.refused_streams.get(reason, 0) + 1

    def http2_cut(self, reason: str) -> None:
        """Count one HTTP/2 connection cut for `reason`."""
        self.http2_cuts[reason] = self.http2_cuts.get(reason, 0) + 1

    def published(self, outcome: str) -> None:
        self.publishes[outcome] = self.publishes.get(outcome, 0) + 1

    def resumed(self, outcome: str) -> None:
        self.resumes[outcome] = self.resumes.get(outcome, 0) + 1

    def report(self) -> dict[str, int]:
        """The counts that are not zero, by name, as `/healthz` has always shown them."""
        names = ("streams_opened", "streams_refused", "messages", "slow_clients_cut", "connections_cut_pending",
                 "auth_unavailable")  # fmt: skip
        counts = {name: getattr(self, name) for name in names}
        counts.update((f"refused_{reason}", count) for reason, count in self.refused.items())
        counts.update((f"http2_cut_{reason}", count) for reason, count in self.http2_cuts.items())
        return {name: count for name, count in counts.items() if count}
