"""`make deploy-check`: what ships for operators, checked offline with the real validators.

- `promtool check rules` on deploy/prometheus/alerts.yml;
- `helm lint` and `helm template` of deploy/helm/crisis-triage (defaults, and the example values
  for Strimzi and CloudNativePG), then every rendered manifest validated against the Kubernetes
  schemas (kubernetes-validate, strict: an unknown field is an error), the ServiceMonitor
  against the Prometheus Operator's CRD;
- the example Strimzi and CloudNativePG manifests against their operators' CRDs.

promtool and helm are built from their Go modules into .local/tools (once); the Prometheus
Operator's CRDs come from its Go module too; Strimzi's and CloudNativePG's (neither served as a
Go module or a Maven artifact here) are kept in deploy/helm/validation/.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / ".local" / "tools"
CHART = ROOT / "deploy" / "helm" / "crisis-triage"
EXAMPLES = ROOT / "deploy" / "helm" / "examples"
VENDORED_CRDS = ROOT / "deploy" / "helm" / "validation"
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
#: The Kubernetes version the rendered manifests are validated against.
KUBERNETES = "1.34"
#: Go modules: the tools, and the CRDs inside modules.
PROMTOOL = "github.com/prometheus/prometheus/cmd/promtool@v0.316.0"
HELM = "helm.sh/helm/v3/cmd/helm@v3.22.0"
PROMETHEUS_OPERATOR = "github.com/prometheus-operator/prometheus-operator@v0.85.0"


class CheckFailed(Exception):
    pass


def run(cmd: list[str], **kwargs: Any) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if done.returncode != 0:
        raise CheckFailed(f"{' '.join(cmd[:3])} …: {done.stdout[-3000:]}{done.stderr[-3000:]}")
    return done.stdout


def go_tool(name: str, module: str) -> Path:
    """`name` built from `module` into .local/tools (once)."""
    path = TOOLS / name
    if not path.exists():
        print(f"building {name} from {module} (once, into {TOOLS.relative_to(ROOT)})", flush=True)
        env = {**os.environ, "GOBIN": str(TOOLS), "CGO_ENABLED": "0"}
        run(["go", "install", module], env=env)
    return path


def go_module_dir(module: str) -> Path:
    """The source of a Go module at a version, from the module proxy (the Go module cache)."""
    out = run(["go", "mod", "download", "-json", module], cwd=TOOLS)
    return Path(json.loads(out)["Dir"])


def documents(text: str) -> Iterator[dict[str, Any]]:
    for doc in yaml.safe_load_all(text):
        if doc:
            yield doc


def crd_schemas(paths: Iterable[Path]) -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) → the CRD's OpenAPI schema, for every served version."""
    schemas = {}
    for path in paths:
        for crd in documents(path.read_text()):
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                if version.get("served", True):
                    schema = version["schema"]["openAPIV3Schema"]
                    schemas[(f"{group}/{version['name']}", kind)] = schema
    return schemas


def validate(doc: dict[str, Any], crds: dict[tuple[str, str], dict[str, Any]], where: str) -> str:
    """Validate one manifest; returns its `Kind/name`."""
    kind, api = str(doc.get("kind")), str(doc.get("apiVersion"))
    name = f"{kind}/{doc.get('metadata', {}).get('name')}"
    schema = crds.get((api, kind))
    try:
        if schema is not None:
            jsonschema.validate(doc, _strict(schema))
        else:
            kubernetes_validate.validate(doc, KUBERNETES, strict=True)
    except (jsonschema.ValidationError, kubernetes_validate.ValidationError) as exc:
        raise CheckFailed(f"{where}: {name}: {exc.message}") from exc
    except kubernetes_validate.SchemaNotFoundError as exc:
        raise CheckFailed(f"{where}: {name}: no schema for {api} {kind}") from exc
    return name


def _strict(schema: Any) -> Any:
    """A CRD's schema with unknown fields refused, as the API server prunes and `kubectl
    --validate=strict` refuses them (unless the CRD preserves them)."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if (
            out.get("type") == "object"
            and "properties" in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
            and "additionalProperties" not in out
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


def check_rules() -> None:
    promtool = go_tool("promtool", PROMTOOL)
    print(run([str(promtool), "check", "rules", str(RULES)]).strip())


def check_chart(crds: dict[tuple[str, str], dict[str, Any]]) -> None:
    helm = go_tool("helm", HELM)
    variants = {
        "defaults": [],
        "strimzi + cloudnative-pg": ["-f", str(EXAMPLES / "values-strimzi-cnpg.yaml")],
        "no autoscaling, no policies": [
            "--set",
            "networkPolicy.enabled=false,migrations.enabled=false",
            "--set",
            "services.intake.autoscaling.enabled=false",
        ],
    }
    for label, args in variants.items():
        # helm built from its module knows no cluster version of its own (it says 1.20).
        args = [*args, "--kube-version", f"{KUBERNETES}.0"]
        print(run([str(helm), "lint", "--strict", str(CHART), *args]).strip().splitlines()[-1])
        rendered = run([str(helm), "template", "triage", str(CHART), *args])
        names = [validate(doc, crds, f"chart ({label})") for doc in documents(rendered)]
        print(f"chart ({label}): {len(names)} manifests valid: {', '.join(sorted(set(names)))}")


def check_examples(crds: dict[tuple[str, str], dict[str, Any]]) -> None:
    for path in sorted(EXAMPLES.glob("*.yaml")):
        if path.name.startswith("values-"):
            continue
        names = [validate(doc, crds, path.name) for doc in documents(path.read_text())]
        print(f"{path.relative_to(ROOT)}: {len(names)} manifests valid")


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(prog="make deploy-check", description=__doc__).parse_args(argv)
    if shutil.which("go") is None:
        print("make deploy-check needs Go (https://go.dev/dl/) to build helm and promtool")
        return 2
    TOOLS.mkdir(parents=True, exist_ok=True)
    if not (TOOLS / "go.mod").exists():  # `go mod download` wants a module to run in
        (TOOLS / "go.mod").write_text("module tools\n\ngo 1.24\n")
    try:
        operator = go_module_dir(PROMETHEUS_OPERATOR) / "example" / "prometheus-operator-crd"
        crds = crd_schemas(
            [
                operator / "monitoring.coreos.com_servicemonitors.yaml",
                *sorted(VENDORED_CRDS.glob("*.yaml")),
            ]
        )
        check_rules()
        check_chart(crds)
        check_examples(crds)
    except CheckFailed as exc:
        print(f"deploy-check FAILED: {exc}")
        return 1
    print("deploy-check: all valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())
