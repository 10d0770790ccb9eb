"""AWS Lambda entry points: `handler.handler` runs tasks, `dlq.handler` settles dead letters."""
