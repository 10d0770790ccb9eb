"""The benchmark's moto server: moto's own, with the fixes `aws_stack()` applies, for everyone.

moto reads every queue attribute (three scans of the queue) for each message it returns, so a
deep queue makes each receive cost O(depth) per message; AWS has no such cost. The fix, and
DynamoDB's atomic conditional writes, apply to every system the benchmark runs, alike.
"""

from __future__ import annotations

import sys

from moto.server import main

from sqs_tasks.moto_fixes import faithful_moto

if __name__ == "__main__":
    with faithful_moto():
        main(sys.argv[1:])
