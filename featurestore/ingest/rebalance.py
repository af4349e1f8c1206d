"""The consumer-group rebalance listener: commit before giving partitions up, recover new ones, drop lost ones."""

from __future__ import annotations

import logging
from typing import Callable

from kafka import ConsumerRebalanceListener

log = logging.getLogger(__name__)


class RebalanceListener(ConsumerRebalanceListener):
    """Calls the worker's hooks with the partitions: `revoked` (commit, then forget), `assigned`, `lost` (never
    commit those)."""

    def __init__(self, revoked: Callable[[set], None], assigned: Callable[[set], None], lost: Callable[[set], None]):
        self._revoked, self._assigned, self._lost = revoked, assigned, lost

    def on_partitions_revoked(self, revoked):
        self._revoked(set(revoked))

    def on_partitions_assigned(self, assigned):
        log.info("assigned %s", sorted((tp.topic, tp.partition) for tp in assigned))
        self._assigned(set(assigned))

    def on_partitions_lost(self, lost):  # another member may own them now: do not commit
        self._lost(set(lost))
