#!/usr/bin/env python3
"""Launch sushy-tools' Redfish emulator with a deterministic fake-driver power delay.

sushy-tools' fake driver applies every power change 1-11 s later at random
(``random.randint(1, 11)`` in ``sushy_tools.emulator.resources.systems.fakedriver``).
For deterministic tests this launcher replaces that module's ``random`` with a stub
whose ``randint`` returns a fixed delay taken from the environment, then runs the
emulator's own ``main()`` with the remaining command-line arguments.

Environment:
  SUSHY_FAKE_POWER_DELAY  seconds before a power change is reported (default 0)

Usage (all other arguments are sushy-emulator's own):
  python3 hack/bmc/sushy_launcher.py --config FILE [--port N] [...]
"""

import os
import sys

from sushy_tools.emulator import main as emulator_main
from sushy_tools.emulator.resources.systems import fakedriver


class _FixedDelay:
    """Stand-in for the `random` module, as used by the fake driver."""

    def __init__(self, delay):
        self._delay = delay

    def randint(self, _low, _high):
        return self._delay


def main():
    delay = int(os.environ.get("SUSHY_FAKE_POWER_DELAY", "0"))
    if delay < 0:
        sys.exit("SUSHY_FAKE_POWER_DELAY must be >= 0")
    fakedriver.random = _FixedDelay(delay)
    sys.argv[0] = "sushy-emulator"
    return emulator_main.main()


if __name__ == "__main__":
    sys.exit(main())
