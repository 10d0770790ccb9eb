"""`sqs-tasks local`: the SAM stack deployed into an embedded moto server, run locally.

- `stack`: the deploy pipeline (`sam build` in `build`, `sam package`, the SAM transform,
  CloudFormation `create_stack`), shared with the infrastructure tests; `tools`: the sam tool
  venv and running its tools.
- `mapping`: the Lambda SQS event source mappings, emulated from their deployed configuration
  (read by `mapping_config`).
- `run`: the command itself, with `options`, `environment` (moto, logging, Django), `workers`,
  the demo `mix` and its `expectations`, the `--tasks` `load`, the `console` (progress) and
  the `report`.

Importing this package imports neither Django nor boto3.
"""
