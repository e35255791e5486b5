"""Developer tooling that never ships: CLI, local gateway, embedded database, seed data, benchmarks."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
