"""Operations on results and queues for people: the management commands' work, callable alone.

`base` finds what a command names (backend, queue, result), `reports` shows results and
failures, `requeue` retries a failed result or redrives a dead-letter queue, `tables` formats.
"""
