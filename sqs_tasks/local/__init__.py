"""`sqs-tasks local`: the SAM stack deployed into an embedded moto server, run locally.

- `stack`: the deploy pipeline (`sam build`, `sam package`, the SAM transform, CloudFormation
  `create_stack`), shared with the infrastructure tests.
- `mapping`: the Lambda SQS event source mappings, emulated from their deployed configuration.
- `run`: the command itself.

Importing this package imports neither Django nor boto3.
"""
