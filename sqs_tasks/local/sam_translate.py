"""Apply the SAM transform to a (packaged) template, as CloudFormation would.

Run as a script with the interpreter of the sam tool venv (.venv-sam, made by
bin/check-infra), where aws-sam-translator is installed; it imports nothing of sqs_tasks:

    python sam_translate.py PACKAGED_TEMPLATE PARAMETERS_JSON OUTPUT_JSON

PARAMETERS_JSON is a JSON object of the stack's parameter values.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


class NoManagedPolicyNames:
    """The template names no managed policy by bare name (its roles are explicit)."""

    def load(self) -> dict[str, str]:
        raise RuntimeError("the template must not need AWS managed policy names resolved")


def main(template_path: str, parameters_path: str, output_path: str) -> None:
    """Transform the template at template_path with the parameters; write the JSON result."""
    from samtranslator.translator.transform import (  # type: ignore[import-not-found]
        transform,
    )
    from samtranslator.yaml_helper import yaml_parse  # type: ignore[import-not-found]

    template: dict[str, Any] = yaml_parse(Path(template_path).read_text())
    parameters = json.loads(Path(parameters_path).read_text())
    translated = transform(template, parameters, NoManagedPolicyNames())
    Path(output_path).write_text(json.dumps(translated, indent=1, sort_keys=True))


if __name__ == "__main__":
    main(*sys.argv[1:4])
