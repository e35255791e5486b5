"""The functions as `template.yaml` declares them, loaded the way the Lambda runtime loads them.

Lambda puts the function's CodeUri and the layer's `python/` on sys.path and imports the module named
by `Handler`; we do the same, so tools and tests exercise exactly what the template deploys.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from . import REPO_ROOT

TEMPLATE = REPO_ROOT / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    """YAML loader that keeps CloudFormation short-form intrinsics (!Ref, !Sub, ...) as plain dicts."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


@cache
def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    with path.open(encoding="utf-8") as fh:
        return yaml.load(fh, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    code_uri: Path
    handler: str
    http_routes: tuple[tuple[str, str], ...] = ()  # (method, path) of each HttpApi event

    @property
    def path(self) -> str | None:
        return self.http_routes[0][1] if self.http_routes else None

    @property
    def method(self) -> str | None:
        """The method the function is for (POST); others may route to it only to be refused."""
        methods = [m for m, _ in self.http_routes]
        return "POST" if "POST" in methods else (methods[0] if methods else None)

    @property
    def operation(self) -> str | None:
        return self.path.rsplit("/", 1)[-1] if self.path else None


def functions(template: dict[str, Any] | None = None) -> list[FunctionSpec]:
    template = template or load_template()
    specs = []
    for logical_id, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        props = resource["Properties"]
        http_routes = tuple(
            (event["Properties"]["Method"].upper(), event["Properties"]["Path"])
            for event in (props.get("Events") or {}).values()
            if event.get("Type") == "HttpApi"
        )
        specs.append(FunctionSpec(logical_id, REPO_ROOT / props["CodeUri"], props["Handler"], http_routes))
    return specs


def routes() -> dict[tuple[str, str], FunctionSpec]:
    return {route: spec for spec in functions() for route in spec.http_routes}


def by_operation(operation: str) -> FunctionSpec:
    for spec in functions():
        if spec.operation == operation:
            return spec
    raise KeyError(operation)


def _put_on_path(directory: Path) -> None:
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))


def load_handler(spec: FunctionSpec) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """Import the handler as Lambda would: CodeUri on the path, then `module.function`."""
    _put_on_path(REPO_ROOT / "layers" / "common")
    _put_on_path(spec.code_uri)
    module_name, function_name = spec.handler.rsplit(".", 1)
    module = importlib.import_module(module_name)
    return getattr(module, function_name)


def load_module(spec: FunctionSpec) -> Any:
    load_handler(spec)
    return sys.modules[spec.handler.rsplit(".", 1)[0]]


def cors_configuration(template: dict[str, Any] | None = None) -> dict[str, Any]:
    """The HTTP API's CorsConfiguration, with the origins parameter's default filled in."""
    template = template or load_template()
    api = next(r for r in template["Resources"].values() if r.get("Type") == "AWS::Serverless::HttpApi")
    cors = dict(api["Properties"]["CorsConfiguration"])
    origins = cors.get("AllowOrigins")
    if isinstance(origins, dict) and "Ref" in origins:
        default = template["Parameters"][origins["Ref"]].get("Default", "")
        cors["AllowOrigins"] = [o.strip() for o in str(default).split(",") if o.strip()]
    return cors
