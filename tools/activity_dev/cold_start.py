"""Cold starts as Lambda has them: the function's code and the common layer *as `sam build` ships it*
(layers/common/Makefile, built here for this machine's platform), each run in a fresh interpreter without the
development environment's site-packages, next to "bare" peers that import from the same layer.

Two layers are measured:
- `bytecode`: what the layer's Makefile ships (arm64 in the template; this machine's wheels here);
- `no bytecode`: the same files less every .pyc, which is what SAM's python3.13 builder shipped before: it unpacks
  wheels without compiling them, and Lambda's /opt is read-only, so every cold start compiled every module.
"""

from __future__ import annotations

import os
import platform
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import REPO_ROOT

LAYER_SOURCE = REPO_ROOT / "layers" / "common"

# What every handler needs at the least, per the round-two target: the resolver, pydantic and pg8000. Two peers:
# - the imports alone, as the target words it. `import pydantic` is lazy (pydantic 2 loads its model machinery on
#   first use), and so is importing the resolver's class;
# - a bare resolver module: those imports, the resolver with validation and one route taking a one-field model,
#   which is what the module of any handler validating its body with pydantic runs in the init phase (creating
#   the resolver alone loads pydantic's model machinery).
BARE_IMPORTS = (
    "from aws_lambda_powertools.event_handler import APIGatewayHttpResolver\nimport pydantic, pg8000.native\n"
)
BARE_MODULE = textwrap.dedent("""
    app = APIGatewayHttpResolver(enable_validation=True)
    class Body(pydantic.BaseModel):
        x: int = 0
    @app.post("/bare")
    def bare(body: Body):
        return {"ok": True}
""")

_PRELUDE = """import sys, time
started = time.perf_counter()
sys.path[:0] = [p for p in sys.argv[1:3] if p]
"""
_DONE = 'print(time.perf_counter() - started, "boto3" in sys.modules, 200)\n'

BARE_IMPORT_CHILD = _PRELUDE + BARE_IMPORTS + _DONE
BARE_MODULE_IMPORT_CHILD = _PRELUDE + BARE_IMPORTS + BARE_MODULE + _DONE
# ... and its first invocation.
BARE_CHILD = (
    _PRELUDE
    + BARE_IMPORTS
    + BARE_MODULE
    + textwrap.dedent("""
        event = {"version": "2.0", "routeKey": "POST /bare", "rawPath": "/bare", "headers": {}, "body": "{}",
                 "requestContext": {"http": {"method": "POST", "path": "/bare"}, "stage": "$default"},
                 "isBase64Encoded": False}
        app.resolve(event, None)
    """)
    + _DONE
)
# The Lambda runtime's init phase: the function's code and the layer on sys.path, then the handler's module.
IMPORT_CHILD = _PRELUDE + "__import__(sys.argv[3])\n" + _DONE
# ... and the first invocation.
COLD_CHILD = _PRELUDE + textwrap.dedent("""
    import json
    module = __import__(sys.argv[3])

    class Context:
        function_name, memory_limit_in_mb, aws_request_id = sys.argv[3], 512, "cold"
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:" + sys.argv[3]
        def get_remaining_time_in_millis(self): return 29000

    result = module.lambda_handler(json.loads(sys.argv[4]), Context())
    print(time.perf_counter() - started, "boto3" in sys.modules, result["statusCode"])
""")


def build_layers(workdir: Path) -> dict[str, Path]:
    """The common layer built by its Makefile for this machine (`bytecode`), and a copy without any .pyc."""
    built = workdir / "bytecode"
    machine = {"x86_64": "x86_64", "AMD64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}[platform.machine()]
    subprocess.run(
        [
            "make",
            "--no-print-directory",
            "build-CommonLayer",
            f"ARTIFACTS_DIR={built}",
            f"PYTHON={sys.executable}",
            f"PLATFORM=manylinux2014_{machine}",
        ],
        cwd=LAYER_SOURCE,
        check=True,
        capture_output=True,
    )
    plain = workdir / "no-bytecode"
    shutil.copytree(built, plain, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return {"bytecode": built / "python", "no bytecode": plain / "python"}


def run_child(code: str, *args: str) -> tuple[float, bool]:
    """Seconds from the child's start of imports to its result, and whether it imported boto3. `-S`: no
    site-packages of the development environment; the runtime's own packages (boto3 in Lambda) come after the
    layer, as in Lambda. Nothing is written back as bytecode."""
    env = {**os.environ, "POWERTOOLS_LOG_LEVEL": "WARNING", "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTHONPATH", None)
    runtime = sysconfig.get_paths()["purelib"]
    program = f"import sys\nsys.path.append({runtime!r})\n" + code
    out = subprocess.run(
        [sys.executable, "-S", "-c", program, *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=tempfile.gettempdir(),
    )
    seconds, boto, _ = out.stdout.strip().splitlines()[-1].split()
    return float(seconds), boto == "True"


def measure(
    functions: list[tuple[str, Path, str, str]], pairs: int, record: Callable[[str, dict[str, Any]], None]
) -> None:
    """`functions`: (operation, code dir, handler module, first event as JSON). Per function and layer, fresh
    interpreters alternate with the bare peers' (a slow phase of the machine falls on both of a pair); each ratio
    is the function's median over the peer's median of the same runs:
    - `import <op>`: the Lambda init phase, against the bare imports and against the bare resolver module;
    - `cold start <op>` (layer with bytecode): import and a first invocation (connect, authenticate, route,
      validate: a body with an unknown field, the same work for every function) against the bare resolver
      module and one resolved request;
    - with the layer without bytecode, imports only, in fewer pairs."""
    with tempfile.TemporaryDirectory(prefix="glow-layer-") as workdir:
        layers = build_layers(Path(workdir))
        for layer_name, layer in layers.items():
            rounds = pairs if layer_name == "bytecode" else max(3, pairs // 3)
            suffix = "" if layer_name == "bytecode" else f" [{layer_name}]"
            peers: dict[str, list[float]] = {"import": [], "module": [], "start": []}
            rows: list[tuple[str, dict[str, Any]]] = []
            for operation, code_uri, module, event_json in functions:
                runs: dict[str, list[tuple[float, bool]]] = {"import": [], "cold start": []}
                mine: dict[str, list[float]] = {"import": [], "module": [], "start": []}
                for _ in range(rounds):
                    mine["import"].append(run_child(BARE_IMPORT_CHILD, "", str(layer))[0])
                    mine["module"].append(run_child(BARE_MODULE_IMPORT_CHILD, "", str(layer))[0])
                    runs["import"].append(run_child(IMPORT_CHILD, str(code_uri), str(layer), module))
                    if layer_name == "bytecode":
                        mine["start"].append(run_child(BARE_CHILD, "", str(layer))[0])
                        runs["cold start"].append(run_child(COLD_CHILD, str(code_uri), str(layer), module, event_json))
                for name, values in mine.items():
                    peers[name] += values
                for label, samples in runs.items():
                    if not samples:
                        continue
                    median = statistics.median(s[0] for s in samples)
                    ratios = (
                        {
                            "vs_bare": round(median / statistics.median(mine["import"]), 2),
                            "vs_bare_module": round(median / statistics.median(mine["module"]), 2),
                        }
                        if label == "import"
                        else {"vs_bare": round(median / statistics.median(mine["start"]), 2)}
                    )
                    row = {"median_ms": round(median * 1000, 1), **ratios, "boto3_imported": any(s[1] for s in samples)}
                    rows.append((f"{label} {operation}{suffix}", row))
            record(
                f"import [bare: resolver, pydantic, pg8000]{suffix}",
                {"median_ms": round(statistics.median(peers["import"]) * 1000, 1)},
            )
            record(
                f"import [bare resolver module]{suffix}",
                {"median_ms": round(statistics.median(peers["module"]) * 1000, 1)},
            )
            if peers["start"]:
                bare_start = round(statistics.median(peers["start"]) * 1000, 1)
                record("cold start [bare resolver handler]", {"median_ms": bare_start})
            for name, value in rows:
                record(name, value)
