#!/usr/bin/env python
"""NEXUS-compatible reference server entry point.

    python tests/nexus_server/nexus.py -addr 127.0.0.1:9000 -storage sqlite -db nexus.db

Same flags and defaults as the real Go binary (``-addr :9000``, ``-storage memory``); the keyring is
``./data/keys`` under the working directory, unlocked by ``NEXUS_KEY_PASSWORD``
(default ``changeme-in-production``). Extra flags: ``-fault-*`` (see faults.py).
"""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
# Import as the ``tests.nexus_server`` package, never as loose top-level modules.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or '.') != _HERE]
sys.path.insert(0, os.path.dirname(os.path.dirname(_HERE)))

from tests.nexus_server.server import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
