"""Every command in README.md and docs/*.md is checked, so the documentation cannot drift from the code.

Commands are the lines of fenced ```bash / ```sh / ```console blocks (continuation lines joined, comments
dropped, a leading `$ ` removed; in ```console blocks only the `$ ` lines are commands). Each one must be
covered by a rule in `RULES`; a command that no rule covers fails, so a new kind of command in the docs
needs a rule (and a check) here first. ```python blocks are compiled (usage snippets also import what
they name), ```json and ```yaml blocks parsed. Nothing heavy runs: `neuroflux ... --help` and
`dagster definitions validate` are the only commands executed; the others are parsed by the real parser
or checked against the files they name.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import importlib
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DOC_FILES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SHELL_LANGUAGES = {"bash", "sh", "console"}
KNOWN_LANGUAGES = SHELL_LANGUAGES | {"python", "json", "yaml", "text"}
README_MAX_LINES = 120
# Features that were removed; the docs must not send anyone to them.
REMOVED = (
    "neuroflux_lib.cli",
    "python -m neuroflux_lib",
    "demo-cli",
    "neuroflux_lib.preprocessing",
    "NEUROFLUX_K8S_GPUS",
)
# Environment variables the docs may set: the project's own (each must still be read somewhere in the
# code) and other tools' variables the docs explain.
PROJECT_ENV = (
    "DAGSTER_HOME",
    "NEUROFLUX_PROFILE",
    "NEUROFLUX_TRACKING",
    "NEUROFLUX_OPTUNA_STORAGE",
    "NEUROFLUX_RETRAIN_CRON",
    "NEUROFLUX_ROOT",
    "NEUROFLUX_MIN_MACRO_F1",
    "WANDB_API_KEY",
)
OTHER_ENV = ("TORCH_HOME",)
NO_CLUSTER = (
    "needs a Kubernetes cluster and Helm, which CI does not have; tests/deploy/test_dockerfile.py and "
    "tests/deploy/test_k8s.py check the files and the pods these commands create"
)


# ------------------------------------------------------------------------------------ extraction


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    language: str
    lines: tuple[str, ...]

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


@dataclass(frozen=True)
class Command:
    where: str
    text: str  # as written: continuation lines joined, comment and `$ ` removed
    env: dict[str, str] = field(hash=False)  # leading NAME=value assignments
    argv: tuple[str, ...]  # the rest, one simple command (`&&`, `;`, `|` split; redirections dropped)

    @property
    def program(self) -> str:
        """`neuroflux`, `make`, ...: a `.venv/bin/` prefix removed."""
        return self.argv[0].removeprefix(".venv/bin/") if self.argv else ""


def fenced_blocks(path: Path) -> Iterator[Block]:
    fence, language, start, body = None, "", 0, []
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        stripped = raw.strip()
        if fence is None:
            match = re.match(r"(`{3,}|~{3,})\s*([\w+-]*)", stripped)
            if match:
                fence, language, start, body = match.group(1), match.group(2).lower(), number, []
        elif stripped.startswith(fence) and not stripped[len(fence) :].strip():
            yield Block(path, start, language, tuple(body))
            fence = None
        else:
            body.append(raw)
    assert fence is None, f"{path.relative_to(REPO)}:{start}: fenced block never closed"


def logical_lines(block: Block) -> Iterator[tuple[int, str]]:
    """(line number, text) with continuation lines joined; console blocks keep only `$ ` lines."""
    current, first = "", 0
    for offset, raw in enumerate(block.lines, start=1):
        line = raw.strip()
        if not current:
            first = block.line + offset
            if block.language == "console":
                if not line.startswith("$ "):
                    continue  # output
                line = line[2:]
            elif line.startswith("$ "):
                line = line[2:]
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        yield first, current + line
        current = ""
    if current:
        yield first, current


CONTROL = {"&&", "||", ";", "|", "&"}
REDIRECT = {">", ">>", "<", "2>", "2>&1"}


def simple_commands(text: str) -> Iterator[list[str]]:
    """Words of each simple command in `text`; comments dropped, redirections and their targets dropped."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    words: list[str] = []
    tokens = iter(lexer)
    for token in tokens:
        if token in CONTROL:
            if words:
                yield words
            words = []
        elif token in REDIRECT:
            next(tokens, None)
        else:
            words.append(token)
    if words:
        yield words


def split_env(words: list[str]) -> tuple[dict[str, str], tuple[str, ...]]:
    env = {}
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    return env, tuple(words)


def doc_commands() -> list[Command]:
    commands = []
    for path in DOC_FILES:
        for block in fenced_blocks(path):
            if block.language not in SHELL_LANGUAGES:
                continue
            for number, text in logical_lines(block):
                where = f"{path.relative_to(REPO)}:{number}"
                for words in simple_commands(text):
                    env, argv = split_env(words)
                    commands.append(Command(where, text.split(" #")[0].strip(), env, argv))
    return commands


def blocks(language: str) -> list[Block]:
    return [block for path in DOC_FILES for block in fenced_blocks(path) if block.language == language]


COMMANDS = doc_commands()


# ------------------------------------------------------------------------------------------ checks


def makefile_targets() -> set[str]:
    text = (REPO / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z0-9][\w.-]*)\s*:(?!=)", text, re.MULTILINE))


def makefile_variables() -> set[str]:
    text = (REPO / "Makefile").read_text()
    return set(re.findall(r"^(?:export\s+)?([A-Z_][A-Z0-9_]*)\s*[:?+]?=", text, re.MULTILINE))


@functools.cache
def settable_env() -> frozenset[str]:
    """The variables a documented command may set: the project's own that the code (or the Makefile)
    still reads, other tools' that the docs explain, and the Makefile's variables."""
    sources = [(REPO / "Makefile").read_text()]
    for package in ("neuroflux_lib", "neuroflux_assets"):
        sources += [path.read_text() for path in (REPO / package).rglob("*.py")]
    read = {name for name in PROJECT_ENV if any(name in source for source in sources)}
    return frozenset(read | set(OTHER_ENV) | makefile_variables())


def check_env(command: Command) -> None:
    unknown = set(command.env) - settable_env()
    assert not unknown, f"{command.where}: `{command.text}` sets variables nothing reads: {sorted(unknown)}"


def run(argv: list[str], timeout: float, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "NEUROFLUX_TRACKING": "disabled", **env}
    return subprocess.run(
        argv, cwd=REPO, env=environment, capture_output=True, text=True, timeout=timeout, check=False
    )


def check_make(command: Command, tmp: Path) -> None:
    check_env(command)
    words = [word for word in command.argv[1:] if not word.startswith("-")]
    env = dict(word.split("=", 1) for word in words if "=" in word)
    targets = [word for word in words if "=" not in word]
    assert targets, f"{command.where}: `{command.text}` names no target"
    missing = set(targets) - makefile_targets()
    assert not missing, f"{command.where}: no Makefile target {sorted(missing)}"
    unknown = set(env) - makefile_variables()
    assert not unknown, f"{command.where}: the Makefile has no variable {sorted(unknown)}"
    if shutil.which("make"):  # dry run: the Makefile parses and every prerequisite can be made
        result = run(["make", "-n", *targets], timeout=60)
        assert result.returncode == 0, f"{command.where}: make -n {targets}:\n{result.stderr}"


def legacy_config_names() -> set[str]:
    from neuroflux_lib.models.registry import REGISTRY

    return {name for spec in REGISTRY.values() for name in spec.legacy_config_names}


def check_config_paths(command: Command) -> None:
    """Every `configs/...` word exists; a model config of the original project only by a registry name."""
    for word in command.argv:
        for token in re.findall(r"(?:^|=)(configs/\S+)", word):
            if (REPO / token).exists():
                continue
            legacy = Path(token).parent == Path("configs") and Path(token).name in legacy_config_names()
            assert legacy, f"{command.where}: `{command.text}` names {token}, which does not exist"


def check_neuroflux(command: Command, tmp: Path) -> None:
    check_env(command)
    argv = list(command.argv[1:])
    if "--help" in argv or "-h" in argv:  # cheap: run it for real
        result = run([str(BIN / "neuroflux"), *argv], timeout=120)
        assert result.returncode == 0, f"{command.where}: `{command.text}` failed:\n{result.stderr}"
        assert result.stdout.startswith("usage: neuroflux"), result.stdout[:200]
        return
    from neuroflux_assets.cli import parser
    from neuroflux_assets.cli.options import resolve

    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            args = parser().parse_args(argv)
    except SystemExit as error:
        pytest.fail(
            f"{command.where}: the CLI rejects `{command.text}` (exit {error.code}):\n{errors.getvalue()}"
        )
    check_config_paths(command)
    profile = getattr(args, "profile", None)
    if profile and not profile.endswith(".json"):
        assert (REPO / "configs" / "profiles" / f"{profile}.json").is_file(), f"{command.where}: {profile}"
    if hasattr(args, "dataset_config"):  # the config files load and validate as the command would
        cwd = Path.cwd()
        os.chdir(REPO)
        try:
            resolve(args, model=hasattr(args, "model_config"))
        finally:
            os.chdir(cwd)


def check_dagster(command: Command, tmp: Path) -> None:
    check_env(command)
    argv = list(command.argv[1:])
    if argv[:2] == ["definitions", "validate"]:  # cheap: run it for real, in a throwaway instance
        (tmp / "dagster.yaml").symlink_to(REPO / "dagster.yaml")
        result = run([str(BIN / "dagster"), *argv], timeout=300, DAGSTER_HOME=str(tmp))
        assert result.returncode == 0, f"{command.where}: `{command.text}` failed:\n{result.stderr[-3000:]}"
        return
    if argv[:1] in (["schedule"], ["sensor"]) and argv[1:2] == ["start"]:
        assert argv[argv.index("-w") + 1] == "workspace.yaml" and (REPO / "workspace.yaml").is_file()
        from neuroflux_assets.definitions import defs

        name = argv[2]
        repository = defs.get_repository_def()
        found = (
            repository.has_schedule_def(name) if argv[0] == "schedule" else repository.has_sensor_def(name)
        )
        assert found, f"{command.where}: the definitions have no {argv[0]} {name!r}"
        return
    pytest.fail(f"{command.where}: no rule for `dagster {' '.join(argv[:2])}`: add one to {__file__}")


def check_cp(command: Command, tmp: Path) -> None:
    source = command.argv[1]
    assert (REPO / source).is_file(), (
        f"{command.where}: `{command.text}` copies {source}, which does not exist"
    )


def check_export(command: Command, tmp: Path) -> None:
    names = {word.partition("=")[0] for word in command.argv[1:]}
    unknown = names - settable_env()
    assert not unknown, (
        f"{command.where}: `{command.text}` exports variables nothing reads: {sorted(unknown)}"
    )


def check_docker(command: Command, tmp: Path) -> None:
    """Each docker command is run by tests/deploy/test_docker_image.py (in CI, which has an engine), or is
    listed there with the reason it cannot run here (a registry push, GPUs)."""
    from tests.deploy.test_docker_image import NOT_RUN_HERE, RUN_HERE

    known = [shlex.split(text) for text in (*RUN_HERE, *NOT_RUN_HERE)]
    assert list(command.argv) in known, f"{command.where}: `{command.text}` is not run or excused there"


def needs_a_cluster(command: Command, tmp: Path) -> None:
    pytest.skip(f"`{shlex.join(command.argv)}` {NO_CLUSTER}")


@dataclass(frozen=True)
class Rule:
    name: str
    applies: Callable[[Command], bool]
    check: Callable[[Command, Path], None]  # (command, an empty temporary folder)


RULES = (
    Rule("make TARGET: the target exists, `make -n` succeeds", lambda c: c.program == "make", check_make),
    Rule(
        "neuroflux: parsed by the real parser, configs exist and load; --help runs",
        lambda c: c.program == "neuroflux",
        check_neuroflux,
    ),
    Rule(
        "dagster: definitions validate runs; schedule/sensor start names a definition",
        lambda c: c.program == "dagster",
        check_dagster,
    ),
    Rule(
        "docker: run by tests/deploy/test_docker_image.py, or excused there with a reason",
        lambda c: c.program == "docker",
        check_docker,
    ),
    Rule("helm, kubectl: skipped (no cluster)", lambda c: c.program in ("helm", "kubectl"), needs_a_cluster),
    Rule("cp SOURCE DEST: the source exists", lambda c: c.program == "cp" and len(c.argv) == 3, check_cp),
    Rule("export NAME=VALUE: a variable the code reads", lambda c: c.program == "export", check_export),
)


def rule_for(command: Command) -> Rule | None:
    return next((rule for rule in RULES if rule.applies(command)), None)


# ------------------------------------------------------------------------------------------- tests


def test_the_docs_hold_commands() -> None:
    programs = {command.program for command in COMMANDS}
    assert {"make", "neuroflux", "dagster", "docker"} <= programs, programs


@pytest.mark.parametrize("command", COMMANDS, ids=[f"{c.where} {shlex.join(c.argv)[:50]}" for c in COMMANDS])
def test_doc_command(command: Command, tmp_path: Path) -> None:
    rule = rule_for(command)
    if rule is None:
        pytest.fail(
            f"{command.where}: no rule covers `{command.text}`; add one to RULES in "
            f"{Path(__file__).relative_to(REPO)} (a check, or a skip with its reason)"
        )
    rule.check(command, tmp_path)


def test_fenced_blocks_have_a_known_language() -> None:
    unknown = [
        f"{block.where} ```{block.language}"
        for path in DOC_FILES
        for block in fenced_blocks(path)
        if block.language not in KNOWN_LANGUAGES
    ]
    assert not unknown, f"blocks this test does not know how to check: {unknown}"


# A python block whose first line names a file (`# neuroflux_lib/models/x.py ...`) is code to put into
# that file: compiled only. Any other python block is a usage snippet: its imports must resolve too.
FILE_MARKER = re.compile(r"#\s*((?:neuroflux_lib|neuroflux_assets|tests)/[\w/]+\.py)\b(.*)")


@pytest.mark.parametrize("block", blocks("python"), ids=lambda b: b.where)
def test_python_block(block: Block) -> None:
    source = "\n".join(block.lines)
    tree = ast.parse(source, filename=block.where)
    compile(tree, block.where, "exec")
    marker = FILE_MARKER.match(block.lines[0].strip()) if block.lines else None
    if marker:
        assert (REPO / marker.group(1)).is_file() or "new file" in marker.group(2), block.where
        return
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("neuroflux_"):
            module = importlib.import_module(node.module)
            missing = [alias.name for alias in node.names if not hasattr(module, alias.name)]
            assert not missing, f"{block.where}: {node.module} has no {missing}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("neuroflux_"):
                    importlib.import_module(alias.name)


@pytest.mark.parametrize("block", blocks("json"), ids=lambda b: b.where)
def test_json_block(block: Block) -> None:
    """Valid JSON; a model config (or a profile's model blocks) uses only keys the config models have."""
    from neuroflux_lib.config import DatasetConfig, ModelConfig

    values = json.loads("\n".join(block.lines))
    keys = set(ModelConfig.model_fields) | set(DatasetConfig.model_fields)
    if "model_name" in values:
        unknown = set(values) - set(ModelConfig.model_fields)
        assert not unknown, f"{block.where}: not ModelConfig keys: {sorted(unknown)}"
    for name, inner in values.items():
        if isinstance(inner, dict):
            unknown = set(inner) - keys
            assert not unknown, f"{block.where}: block {name!r} has unknown keys {sorted(unknown)}"


@pytest.mark.parametrize("block", blocks("yaml"), ids=lambda b: b.where)
def test_yaml_block(block: Block) -> None:
    assert isinstance(yaml.safe_load("\n".join(block.lines)), dict), block.where


def test_readme_is_short_and_starts_with_the_two_commands() -> None:
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines (at most {README_MAX_LINES})"
    first = next(fenced_blocks(REPO / "README.md"))
    assert first.line <= 8, "the two commands come right after the short intro"
    assert first.language == "bash"
    assert [text.split("#")[0].strip() for _, text in logical_lines(first)] == ["make demo", "make test"]


def test_readme_shows_the_python_api() -> None:
    snippets = ["\n".join(block.lines) for block in blocks("python") if block.path.name == "README.md"]
    assert any("from neuroflux_assets import load_predictor" in snippet for snippet in snippets)


def heading_anchors(path: Path) -> set[str]:
    """GitHub's anchors: lower case, punctuation dropped, spaces to dashes."""
    anchors = set()
    in_block = False
    for line in path.read_text().splitlines():
        if line.strip().startswith("```"):
            in_block = not in_block
        elif not in_block and line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


def test_relative_links_resolve() -> None:
    broken = []
    for path in DOC_FILES:
        for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text()):
            if re.match(r"[a-z]+://", target) or target.startswith("mailto:"):
                continue
            file, _, anchor = target.partition("#")
            resolved = (path.parent / file).resolve() if file else path
            if not resolved.exists():
                broken.append(f"{path.relative_to(REPO)}: {target}")
            elif anchor and resolved.suffix == ".md" and anchor not in heading_anchors(resolved):
                broken.append(f"{path.relative_to(REPO)}: {target} (no such heading)")
    assert not broken, broken


def test_no_removed_features_are_documented() -> None:
    found = [
        f"{path.relative_to(REPO)}: {needle}"
        for path in DOC_FILES
        for needle in REMOVED
        if needle in path.read_text()
    ]
    assert not found, found


def test_architecture_names_every_module() -> None:
    """docs/architecture.md lists each module of both packages (so a new one gets its line there)."""
    text = (REPO / "docs" / "architecture.md").read_text()
    missing = []
    for package in ("neuroflux_lib", "neuroflux_assets"):
        for module in sorted((REPO / package).rglob("*.py")):
            relative = module.relative_to(REPO / package).as_posix()
            if module.name != "__init__.py" and f"`{relative}`" not in text:
                missing.append(f"{package}/{relative}")
    assert not missing, f"docs/architecture.md does not mention {missing}"
