"""Deploy a SAM template into a moto server: the pipeline of `sam deploy`, minus AWS.

1. `sam build` (the template's own build: Makefile, pinned requirements), reused while no
   file of the project changed;
2. `sam package` against the moto server: the code zips and nested templates go to moto's
   S3 and the template's CodeUri/Location become S3 URLs (kept, and put in S3 again, while
   the build is reused);
3. the SAM transform (aws-sam-translator, run with the sam tool venv's interpreter), as
   CloudFormation applies it;
4. CloudFormation `create_stack` on moto, with the parameters given.

Step 1 is in `build`. The tools come from the sam tool venv (`tools`): `$SQS_TASKS_SAM_VENV`,
else `.venv-sam` next to the template (bin/check-infra and bin/demo create it). The
infrastructure tests and `sqs-tasks local` both deploy through `deploy()`.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import shutil
import time
import warnings
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .build import FINGERPRINT_FILE, build
from .tools import FAKE_CREDENTIALS, REGION, DeployError, Log, SamTools, run_tool, since

TRANSLATE_SCRIPT = Path(__file__).with_name("sam_translate.py")


@dataclass
class Deployment:
    """A stack created in moto: what CloudFormation was given and what it made."""

    endpoint_url: str
    region: str
    stack_name: str
    parameters: dict[str, str]
    template: dict[str, Any]  # after the SAM transform
    outputs: dict[str, str] = field(default_factory=dict)
    # What moto's CloudFormation did not create (resource types it does not emulate).
    skipped: list[str] = field(default_factory=list)

    @property
    def prefix(self) -> str:
        """The stack's Prefix parameter: the start of every resource name."""
        return self.parameters["Prefix"]

    def client(self, service: str) -> Any:
        """A boto3 client of the moto server, with fake credentials."""
        import boto3

        return boto3.session.Session(
            aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
            region_name=self.region,
        ).client(service, endpoint_url=self.endpoint_url)  # type: ignore[call-overload]

    def function(self, name: str) -> dict[str, Any]:
        """A deployed function's configuration (lambda:GetFunctionConfiguration)."""
        configuration: dict[str, Any] = self.client("lambda").get_function_configuration(
            FunctionName=name
        )
        return configuration

    def environment(self, name: str) -> dict[str, str]:
        """The environment variables a deployed function runs with."""
        variables = self.function(name).get("Environment", {}).get("Variables", {})
        return {key: str(value) for key, value in variables.items()}

    def event_source_mappings(self, name: str) -> list[dict[str, Any]]:
        """The event source mappings of a deployed function."""
        mappings: list[dict[str, Any]] = self.client("lambda").list_event_source_mappings(
            FunctionName=name
        )["EventSourceMappings"]
        return mappings


def package(
    built_template: Path,
    *,
    endpoint_url: str,
    bucket: str,
    output: Path,
    tools: SamTools,
    region: str = REGION,
) -> Path:
    """`sam package` into moto's S3: uploads code and nested templates, rewrites their URIs."""
    run_tool(
        [
            tools.sam,
            "package",
            "--template-file",
            built_template,
            "--s3-bucket",
            bucket,
            "--output-template-file",
            output,
            "--region",
            region,
        ],
        cwd=built_template.parent,
        env=tools.env(region, AWS_ENDPOINT_URL=endpoint_url),
        what="sam package",
    )
    return output


@dataclass
class PackageCache:
    """What `sam package` uploaded and wrote, kept while the build it packaged is unchanged.

    A later run of the same build puts the same objects into the new moto server's S3 and
    reuses the packaged template (nested stacks named by URL get the new server's address).
    """

    folder: Path
    built_template: Path
    bucket: str

    def _key(self) -> str | None:
        stamp = self.built_template.parent / FINGERPRINT_FILE
        return f"{stamp.read_text()}\0{self.bucket}" if stamp.exists() else None

    def restore(self, deployment: Deployment, packaged: Path) -> bool:
        """Upload the kept objects and write the packaged template; False if none are kept."""
        key, saved = self._key(), self.folder / "key"
        if key is None or not saved.exists() or saved.read_text() != key:
            return False
        s3 = deployment.client("s3")
        items = sorted((self.folder / "objects").iterdir())
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(lambda item: s3.upload_file(str(item), self.bucket, item.name), items))
        old_endpoint = (self.folder / "endpoint").read_text()
        text = (self.folder / "packaged.yaml").read_text()
        packaged.write_text(text.replace(f"{old_endpoint}/", f"{deployment.endpoint_url}/"))
        return True

    def save(self, deployment: Deployment, packaged: Path) -> None:
        """Keep what `sam package` just uploaded, for the next run of this build."""
        key = self._key()
        shutil.rmtree(self.folder, ignore_errors=True)
        if key is None:
            return
        objects = self.folder / "objects"
        objects.mkdir(parents=True)
        s3 = deployment.client("s3")
        listed = s3.list_objects_v2(Bucket=self.bucket).get("Contents", [])
        if any("/" in item["Key"] for item in listed):
            return  # Not the flat keys this cache knows how to keep.
        for item in listed:
            s3.download_file(self.bucket, item["Key"], str(objects / item["Key"]))
        (self.folder / "packaged.yaml").write_text(packaged.read_text())
        (self.folder / "endpoint").write_text(deployment.endpoint_url)
        (self.folder / "key").write_text(key)  # Last: the cache is whole once it is there.


def translate(
    packaged: Path, parameters: Mapping[str, str], workdir: Path, tools: SamTools
) -> dict[str, Any]:
    """The SAM transform of a packaged template, as CloudFormation would apply it."""
    parameters_file = workdir / "parameters.json"
    parameters_file.write_text(json.dumps(dict(parameters)))
    translated = workdir / "translated.json"
    run_tool(
        [tools.python, TRANSLATE_SCRIPT, packaged, parameters_file, translated],
        cwd=workdir,
        env=tools.env(),
        what="the SAM transform (aws-sam-translator)",
    )
    template: dict[str, Any] = json.loads(translated.read_text())
    return template


def signing_secret(deployment: Deployment) -> str:
    """A signing-key secret in moto, like the one the stack generates; returns its ARN."""
    created = deployment.client("secretsmanager").create_secret(
        Name=f"{deployment.stack_name}-signing-key",
        SecretString=json.dumps({"key": secrets.token_urlsafe(48)}),
    )
    arn: str = created["ARN"]
    return arn


# Stand for what differs from run to run in a kept SAM transform: the moto server's address
# (a port of its own) and the signing secret's ARN (moto gives each secret a random suffix).
ENDPOINT_MARK = "<<moto-endpoint>>"
SECRET_MARK = "<<signing-secret-arn>>"


def translate_cached(
    packaged: Path,
    parameters: Mapping[str, str],
    workdir: Path,
    tools: SamTools,
    endpoint_url: str,
) -> tuple[dict[str, Any], bool]:
    """translate(), its output kept for the same packaged template, parameters and tools;
    whether it was kept."""
    marks = {endpoint_url: ENDPOINT_MARK}
    secret = parameters.get("SigningSecretArn")
    if secret:
        marks[secret] = SECRET_MARK

    def marked(text: str) -> str:
        for value, mark in marks.items():
            text = text.replace(value, mark)
        return text

    def unmarked(text: str) -> str:
        for value, mark in marks.items():
            text = text.replace(mark, value)
        return text

    text = marked(packaged.read_text())
    read = marked(json.dumps(dict(sorted(parameters.items()))))
    key = hashlib.sha256(f"{text}\0{read}\0{tools.version()}".encode()).hexdigest()
    kept = workdir / "translated-cache" / f"{key}.json"
    if kept.exists():
        cached: dict[str, Any] = json.loads(unmarked(kept.read_text()))
        return cached, True
    template = translate(packaged, parameters, workdir, tools)
    shutil.rmtree(kept.parent, ignore_errors=True)
    kept.parent.mkdir(parents=True)
    kept.write_text(marked(json.dumps(template)))
    return template, False


def deploy(
    template: Path,
    endpoint_url: str,
    parameters: Mapping[str, str],
    workdir: Path,
    *,
    stack_name: str = "sqs-tasks",
    built_template: Path | None = None,
    build_dir: Path | None = None,
    tools: SamTools | None = None,
    region: str = REGION,
    log: Log | None = None,
) -> Deployment:
    """Build (unless built_template is given), package, transform and create the stack.

    endpoint_url must name the moto server as `localhost`: moto reads an IP address in
    the Host header as an S3 bucket name. The build goes to build_dir (reused while the
    project is unchanged; default workdir/build), the other artefacts to workdir.
    """
    say = log or (lambda _: None)
    template = template.resolve()
    tools = tools or SamTools.find(template.parent)
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    if built_template is None:
        built_template = build(
            template, build_dir or workdir / "build", tools, region=region, log=log
        )
    built_template = built_template.resolve()
    deployment = Deployment(
        endpoint_url=endpoint_url,
        region=region,
        stack_name=stack_name,
        parameters=dict(parameters),
        template={},
    )
    if not deployment.parameters.get("SigningSecretArn"):
        # moto's CloudFormation does not make AWS::SecretsManager::Secret: made here as the
        # stack would generate it, and passed in as an existing secret.
        deployment.parameters["SigningSecretArn"] = signing_secret(deployment)
    started = time.monotonic()
    bucket = f"{stack_name}-artifacts"
    deployment.client("s3").create_bucket(Bucket=bucket)
    cache = PackageCache(workdir / "package-cache", built_template, bucket)
    packaged = workdir / "packaged.yaml"
    if cache.restore(deployment, packaged):
        say(f"sam package: reused, its uploads put in s3://{bucket} again ({since(started)})")
    else:
        package(
            built_template,
            endpoint_url=endpoint_url,
            bucket=bucket,
            output=packaged,
            tools=tools,
            region=region,
        )
        cache.save(deployment, packaged)
        say(f"sam package: code and nested templates in s3://{bucket} ({since(started)})")
    started = time.monotonic()
    deployment.template, kept = translate_cached(
        packaged, deployment.parameters, workdir, tools, endpoint_url
    )
    how = "reused" if kept else f"{len(deployment.template['Resources'])} resources"
    say(f"SAM transform: {how} ({since(started)})")
    started = time.monotonic()
    cloudformation = deployment.client("cloudformation")
    with warnings.catch_warnings(record=True) as caught:
        # moto warns about, and skips, the resource types it does not emulate.
        warnings.simplefilter("always")
        cloudformation.create_stack(
            StackName=stack_name,
            TemplateBody=json.dumps(deployment.template),
            Parameters=[
                {"ParameterKey": k, "ParameterValue": v} for k, v in deployment.parameters.items()
            ],
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
        )
    for warning in caught:
        text = str(warning.message)
        if text.startswith("Tried to parse AWS::"):
            deployment.skipped.append(text.split()[3])
        else:
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    (stack,) = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    if stack["StackStatus"] != "CREATE_COMPLETE":
        reason = stack.get("StackStatusReason", "")
        raise DeployError(f"create_stack {stack_name}: {stack['StackStatus']} {reason}")
    deployment.outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    deployment.skipped = sorted(set(deployment.skipped))
    say(f"CloudFormation: stack {stack_name} CREATE_COMPLETE ({since(started)})")
    return deployment
