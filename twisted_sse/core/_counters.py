"""Everything the process counts, declared in one place.

`/healthz` shows the counts; each has one name here, bumped as an attribute, so a typo
is an error rather than a new key.
"""

from __future__ import annotations

__all__ = ["Counters"]


class Counters:
    """Counts since the process started; only the ones that moved are reported."""

    __slots__ = (
        "streams_opened", "streams_refused", "messages", "slow_clients_cut",
        "connections_cut_pending", "auth_unavailable", "refused",
    )  # fmt: skip

    def __init__(self) -> None:
        self.streams_opened = 0
        """Streams registered with the hub."""
        self.streams_refused = 0
        """Stream requests answered with retry: (full, draining, broker down)."""
        self.messages = 0
        """Messages the broker handed to the hub."""
        self.slow_clients_cut = 0
        """Streams cut because their queue passed --max-queue."""
        self.connections_cut_pending = 0
        """Connections that were not streams, cut past --max-pending."""
        self.auth_unavailable = 0
        """Streams sent away with retry: because the authorization callback did not answer."""
        self.refused: dict[str, int] = {}
        """Requests denied, by reason (`unauthenticated`, `forbidden`)."""

    def refuse(self, reason: str) -> None:
        """Count one request denied for `reason`."""
        self.refused[reason] = self.refused.get(reason, 0) + 1

    def report(self) -> dict[str, int]:
        """The counts that are not zero, by name (denials as `refused_<reason>`)."""
        counts = {name: getattr(self, name) for name in self.__slots__ if name != "refused"}
        counts.update((f"refused_{reason}", count) for reason, count in self.refused.items())
        return {name: count for name, count in counts.items() if count}
