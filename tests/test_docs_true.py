"""The docs name every knob a user can turn: each template parameter and output, each environment variable the
service reads, each `activity` command and option. A new one that nobody wrote down fails here."""

from __future__ import annotations

import argparse
import re

import pytest
import yaml

from activity_dev import REPO_ROOT
from activity_dev.cli import build_parser
from glow_activity import settings

# The user's docs: what a person deploying, configuring or running the service reads.
DOCS = ("README.md", "docs/API.md", "docs/CONFIGURATION.md", "docs/SECURITY.md", "docs/DECISIONS.md")
# Read outside settings.py: the MCP function's allowed origins, the local gateway's CORS origins, the CLI's.
OTHER_VARIABLES = ("ALLOWED_ORIGINS", "CORS_ALLOW_ORIGINS", "ACTIVITY_RUNTIME_PASSWORD")


def _docs() -> str:
    return "\n".join((REPO_ROOT / path).read_text() for path in DOCS)


def _named(text: str, name: str) -> bool:
    """`name` as a code span of its own, or starting one (`Name=value`, `NAME` in a list of several)."""
    return re.search(rf"`{re.escape(name)}(?:[`=\s]|`)", text) is not None


class _Loader(yaml.SafeLoader):
    pass


_Loader.add_multi_constructor("!", lambda loader, suffix, node: None)


def _template() -> dict:
    return yaml.load((REPO_ROOT / "template.yaml").read_text(), Loader=_Loader)  # noqa: S506 (a SafeLoader)


@pytest.mark.parametrize("section", ["Parameters", "Outputs"])
def test_every_template_parameter_and_output_is_documented(section: str) -> None:
    text = _docs()
    missing = [name for name in _template()[section] if not _named(text, name)]
    assert not missing, f"template {section} without a word in {', '.join(DOCS)}: {missing}"


def test_every_environment_variable_is_documented() -> None:
    text = _docs()
    variables = [name.upper() for name in settings._READERS] + list(OTHER_VARIABLES)
    missing = [name for name in variables if not _named(text, name)]
    assert not missing, f"environment variables without a word in {', '.join(DOCS)}: {missing}"


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], list[str]]]:
    """Each leaf command's words and its options."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return [leaf for name, sub in action.choices.items() for leaf in _commands(sub, (*path, name))]
    options = [flag for action in parser._actions for flag in action.option_strings if flag.startswith("--")]
    return [(path, [flag for flag in options if flag != "--help"])]


def _usage_of(readme: list[str], words: tuple[str, ...]) -> str | None:
    """README's usage of `activity <words>`: the line that starts with it and the indented lines that continue it."""
    head = "activity " + " ".join(words)
    for i, line in enumerate(readme):
        if line.startswith(head) and (len(line) == len(head) or line[len(head)] in " ["):
            block = [line]
            for more in readme[i + 1 :]:
                if not more.startswith(" "):
                    break
                block.append(more)
            return "\n".join(block)
    return None


def test_every_cli_command_and_option_is_in_the_readme() -> None:
    readme = (REPO_ROOT / "README.md").read_text().splitlines()
    problems = []
    for words, options in _commands(build_parser()):
        usage = _usage_of(readme, words)
        if usage is None:
            problems.append(f"`activity {' '.join(words)}` has no usage line")
            continue
        problems += [f"`activity {' '.join(words)}` {flag}" for flag in options if flag not in usage]
    assert not problems, "README's `activity` CLI section lacks: " + "; ".join(problems)


def test_make_help_lists_what_the_readme_says() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text()
    targets = re.findall(r"^([a-zA-Z_-]+):.*## ", makefile, flags=re.MULTILINE)
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("## Make targets", 1)[1].split("\n## ", 1)[0]
    missing = [target for target in targets if f"`{target}`" not in section]
    assert not missing, f"make targets that README's 'Make targets' does not list: {missing}"
