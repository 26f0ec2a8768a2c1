"""Keep the master's offer suppression equal to what the Chronos planner wants.

The planner flips ``Planner.suppressed`` as runs queue and drain, and says so with
``Revive``/``Suppress`` instructions. Sending each of those from its own task lets
them reach the master out of order (a SUPPRESS still in flight overtakes the REVIVE
after it), and Chronos then waits for offers the master will never send. So the
service only ``poke``s one ``OfferState`` task, which sends REVIVE or SUPPRESS one at a
time, each as the planner's flag stands when it is sent, until the last call sent
matches the flag (and again whenever it changes). A new subscription makes the
master's state unknown (``subscribed``): the wanted call is sent once more.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from corral.mesos.framework_client import SchedulerCallError, SchedulerClient

log = logging.getLogger("corral.chronos")

#: pause after a REVIVE/SUPPRESS that could not be delivered
RETRY_SECONDS = 1.0


class OfferState:
    """See the module docstring. ``wanted()`` reads the planner's ``suppressed``."""

    def __init__(
        self, framework: Callable[[], SchedulerClient | None], wanted: Callable[[], bool]
    ) -> None:
        self._framework = framework
        self._wanted = wanted
        self._poked = asyncio.Event()
        #: what the master was last told (None: unknown)
        self.master_suppressed: bool | None = None
        self.calls = {"revive": 0, "suppress": 0}

    def poke(self) -> None:
        self._poked.set()

    def subscribed(self) -> None:
        self.master_suppressed = None
        self._poked.set()

    async def run(self) -> None:
        while True:
            await self._poked.wait()
            self._poked.clear()
            while True:
                fw = self._framework()
                want = self._wanted()
                if fw is None or want == self.master_suppressed:
                    break
                try:
                    if want:
                        await fw.suppress()
                    else:
                        await fw.revive()
                except SchedulerCallError as e:
                    log.info("chronos: %s not delivered: %s", "SUPPRESS" if want else "REVIVE", e)
                    self.master_suppressed = None
                    await asyncio.sleep(RETRY_SECONDS)
                    continue
                self.calls["suppress" if want else "revive"] += 1
                self.master_suppressed = want
