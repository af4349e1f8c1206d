"""The consumer-group rebalance listener: commit before giving partitions up, recover new ones, drop lost ones."""

from __future__ import annotations

import logging
from typing import Callable

from kafka import ConsumerRebalanceListener

log = logging.getLogger(__name__)


class RebalanceListener(ConsumerRebalanceListener):
    """Calls the worker's hooks: `commit` on revoke, `assigned(partitions)`, `lost()` (never commit those)."""

    def __init__(self, commit: Callable[[], None], assigned: Callable[[set], None], lost: Callable[[], None]):
        self._commit, self._assigned, self._lost = commit, assigned, lost

    def on_partitions_revoked(self, _revoked):
        self._commit()

    def on_partitions_assigned(self, assigned):
        log.info("assigned %s", sorted((tp.topic, tp.partition) for tp in assigned))
        self._assigned(set(assigned))

    def on_partitions_lost(self, _lost):  # another member may own them now: do not commit
        self._lost()
