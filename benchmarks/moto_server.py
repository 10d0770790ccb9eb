"""The benchmark's moto server: moto's own, with the fixes `aws_stack()` applies, for everyone.

moto counts the whole queue (three scans) for each message it sends or returns, so a deep
queue makes every SendMessage and ReceiveMessage cost O(depth) per message; AWS has no such
cost. The fixes, and DynamoDB's atomic conditional writes, apply to every system alike.
"""

from __future__ import annotations

import sys

from moto.server import main

from sqs_tasks.moto_fixes import faithful_moto

if __name__ == "__main__":
    with faithful_moto():
        main(sys.argv[1:])
