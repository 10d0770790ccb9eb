"""What talks to AWS: the results table, the task queues, the schedules, the botocore session."""
