"""Consumer-group membership checks shared by the matcher and the sender.

With static membership (``HOOKSTREAM_GROUP_INSTANCE_ID``) two live processes under one name take
the partitions from each other about once a second: the broker fences the older one, and
aiokafka, which does not report the fencing, simply joins again under the same name, and gets a
new member id each time. Neither process would ever stop, and both would look healthy.
``AssignmentChurn`` notices the storm of new member ids and stops the process with a message that
names the setting. A rebalance (a rolling update, a replica added) keeps the member id: it does
not count.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from hookstream.core.errors import MustStopError

#: Assignments under a new member id within ``CHURN_WINDOW_S`` that only a duplicate name
#: explains: a lost session (a long pause) causes one, the fencing loop about one a second.
CHURN_LIMIT = 5
CHURN_WINDOW_S = 30.0


class DuplicateInstanceError(MustStopError):
    """Another live process of the same group uses this process's group instance id."""


class AssignmentChurn:
    """Counts this process's assignments under a new member id; raises on a storm of them when a
    static group instance id is set (without one, names cannot collide)."""

    def __init__(
        self,
        group: str,
        instance_id: str | None,
        limit: int = CHURN_LIMIT,
        window_s: float = CHURN_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.group = group
        self.instance_id = instance_id
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._times: deque[float] = deque()
        self._member_id: str | None = None

    @property
    def recent(self) -> int:
        """New member ids counted in the current window."""
        return len(self._times)

    def assigned(self, member_id: str) -> None:
        """Record one assignment to ``member_id`` (the coordinator's name of this member now);
        raise ``DuplicateInstanceError`` past the limit."""
        if self.instance_id is None:
            return
        previous, self._member_id = self._member_id, member_id
        if previous is None or previous == member_id:
            return
        now = self._clock()
        self._times.append(now)
        while self._times and self._times[0] < now - self.window_s:
            self._times.popleft()
        if len(self._times) >= self.limit:
            raise DuplicateInstanceError(
                f"this process joined group {self.group} under a new member id "
                f"{len(self._times)} times within {self.window_s:g} s: another live process uses "
                f"HOOKSTREAM_GROUP_INSTANCE_ID={self.instance_id}. Give every process its own "
                "(k8s/ uses the pod's name), or leave it unset"
            )
