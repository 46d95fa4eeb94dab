"""crypto_assets uses Dagster's public API only: no private module, no private attribute of a Dagster object.

Every .py file under crypto_assets/ is parsed with ``ast``. Private means a leading underscore (dunders are
public): ``dagster._core``, ``from dagster import _check``, ``dagster_postgres._x``, and ``obj._attr`` where
``obj`` is Dagster's: a name imported from a Dagster package, a parameter annotated with a Dagster type, a name
assigned (or bound by ``with``/``for``) from an expression on one of those; in a subclass of a Dagster class,
``super()._attr`` and any ``self._attr`` the subclass neither assigns nor defines itself. Strings passed to
``getattr`` and friends count as attributes. The two instance configs name only Dagster's own classes.
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from crypto_assets.config import REPO_ROOT

PACKAGE = REPO_ROOT / "crypto_assets"
INSTANCE_CONFIGS = (REPO_ROOT / "dagster.yaml", REPO_ROOT / "deploy" / "postgres" / "dagster.yaml")
ATTRIBUTE_BY_NAME = {"getattr", "setattr", "hasattr", "delattr"}


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def is_dagster_module(module: str) -> bool:
    top = module.split(".")[0]
    return top == "dagster" or top.startswith("dagster_")


def root_name(node: ast.expr) -> str | None:
    """The name an attribute/call/subscript chain starts from (``context`` in ``context.instance.x()[0]``)."""
    while isinstance(node, ast.Attribute | ast.Call | ast.Subscript):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def bound_names(target: ast.expr) -> Iterator[str]:
    for node in ast.walk(target):
        if isinstance(node, ast.Name):
            yield node.id


class PrivateUseFinder(ast.NodeVisitor):
    """Collects "line: what" for every private Dagster import or attribute use in one module."""

    def __init__(self) -> None:
        self.found: list[str] = []
        self.dagster_names: set[str] = set()  # module-level: imported from Dagster packages
        self.scopes: list[set[str]] = [set()]  # the module's, then one per function: names holding Dagster objects
        self.classes: list[set[str] | None] = []  # per class: the self._attrs it sets or defines, if a Dagster subclass

    def report(self, node: ast.AST, what: str) -> None:
        self.found.append(f"{getattr(node, 'lineno', '?')}: {what}")

    def is_dagster(self, node: ast.expr | None) -> bool:
        name = root_name(node) if node is not None else None
        return name is not None and (name in self.dagster_names or any(name in scope for scope in self.scopes))

    # ---------------------------------------------------------------------------------------------- imports
    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if is_dagster_module(alias.name):
                if any(is_private(part) for part in alias.name.split(".")):
                    self.report(node, f"import {alias.name}")
                self.dagster_names.add(alias.asname or alias.name.split(".")[0])

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        if node.level or not is_dagster_module(module):
            return
        if any(is_private(part) for part in module.split(".")):
            self.report(node, f"from {module} import ...")
        for alias in node.names:
            if is_private(alias.name):
                self.report(node, f"from {module} import {alias.name}")
            self.dagster_names.add(alias.asname or alias.name)

    # ---------------------------------------------------------------------------------------------- scopes
    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        arguments = node.args
        every = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs, arguments.vararg, arguments.kwarg]
        annotated = {
            arg.arg
            for arg in every
            if arg is not None and arg.annotation is not None and self.annotation_is_dagster(arg.annotation)
        }
        self.scopes.append(annotated)
        self.generic_visit(node)
        self.scopes.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def annotation_is_dagster(self, annotation: ast.expr) -> bool:
        if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
            try:
                annotation = ast.parse(annotation.value, mode="eval").body
            except SyntaxError:
                return False
        return any(self.is_dagster(node) for node in ast.walk(annotation) if isinstance(node, ast.Name))

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        own: set[str] | None = None
        if any(self.is_dagster(base) for base in node.bases):
            own = {
                target.attr
                for child in ast.walk(node)
                if isinstance(child, ast.Assign | ast.AnnAssign | ast.AugAssign)
                for assigned in (child.targets if isinstance(child, ast.Assign) else [child.target])
                for target in ast.walk(assigned)
                if isinstance(target, ast.Attribute) and root_name(target) == "self"
            } | {child.name for child in node.body if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)}
        self.classes.append(own)
        self.generic_visit(node)
        self.classes.pop()

    def taint(self, targets: list[ast.expr], value: ast.expr | None) -> None:
        if self.is_dagster(value):
            for target in targets:
                self.scopes[-1].update(bound_names(target))

    def visit_Assign(self, node: ast.Assign) -> None:
        self.taint(node.targets, node.value)
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self.taint([node.target], node.value)
        if self.annotation_is_dagster(node.annotation):
            self.scopes[-1].update(bound_names(node.target))
        self.generic_visit(node)

    def visit_With(self, node: ast.With | ast.AsyncWith) -> None:
        for item in node.items:
            if item.optional_vars is not None:
                self.taint([item.optional_vars], item.context_expr)
        self.generic_visit(node)

    visit_AsyncWith = visit_With

    def visit_For(self, node: ast.For | ast.AsyncFor | ast.comprehension) -> None:
        self.taint([node.target], node.iter)
        self.generic_visit(node)

    visit_AsyncFor = visit_For
    visit_comprehension = visit_For

    # ---------------------------------------------------------------------------------------------- uses
    def check_attribute(self, node: ast.AST, owner: ast.expr, attribute: str) -> None:
        if not is_private(attribute):
            return
        own = self.classes[-1] if self.classes else None  # set: inside a subclass of a Dagster class
        if isinstance(owner, ast.Call) and isinstance(owner.func, ast.Name) and owner.func.id == "super":
            if own is not None:
                self.report(node, f"super().{attribute}")
        elif isinstance(owner, ast.Name) and owner.id == "self":
            if own is not None and attribute not in own:
                self.report(node, f"self.{attribute} (a Dagster base class's: this subclass does not define it)")
        elif self.is_dagster(owner):
            self.report(node, f"{ast.unparse(owner)}.{attribute}")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        self.check_attribute(node, node.value, node.attr)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        if (
            isinstance(node.func, ast.Name)
            and node.func.id in ATTRIBUTE_BY_NAME
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
        ):
            self.check_attribute(node, node.args[0], node.args[1].value)
        self.generic_visit(node)


def private_uses(source: str) -> list[str]:
    finder = PrivateUseFinder()
    finder.visit(ast.parse(source))
    return finder.found


def package_files() -> list[Path]:
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 30, "crypto_assets/ not found where expected"
    return files


def test_crypto_assets_uses_only_dagsters_public_api() -> None:
    found = {
        str(path.relative_to(REPO_ROOT)): uses
        for path in package_files()
        if (uses := private_uses(path.read_text(encoding="utf-8")))
    }
    assert found == {}, f"private Dagster API used (import from `dagster` / `dg` only): {found}"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import dagster._core.events", ["1: import dagster._core.events"]),
        ("from dagster._serdes import serialize_value", ["1: from dagster._serdes import ..."]),
        ("from dagster import _check as check", ["1: from dagster import _check"]),
        ("from dagster_postgres._utils import x", ["1: from dagster_postgres._utils import ..."]),
        ("import dagster as dg\ndg._core.events", ["2: dg._core"]),
        ("import dagster as dg\ngetattr(dg, '_check')", ["2: dg._check"]),
        (
            "import dagster as dg\ndef f(context: dg.AssetExecutionContext):\n    context.instance._event_storage",
            ["3: context.instance._event_storage"],
        ),
        (
            "from dagster import DagsterInstance\ndef f(home):\n"
            "    with DagsterInstance.from_config(home) as instance:\n        return instance._run_storage",
            ["4: instance._run_storage"],
        ),
        (
            "import dagster as dg\ndef f(result):\n    for event in dg.materialize([]).all_events:\n"
            "        event._asdict()",
            ["4: event._asdict"],
        ),
        (
            "from dagster_duckdb import DuckDBResource\nclass W(DuckDBResource):\n"
            "    def _own(self):\n        self._mine = 1\n"
            "        return self._mine, self._own, self._engine, super()._close()",
            ["5: self._engine (a Dagster base class's: this subclass does not define it)", "5: super()._close"],
        ),
    ],
)
def test_the_check_finds_private_uses(source: str, expected: list[str]) -> None:
    assert private_uses(source) == expected


def test_the_check_leaves_public_and_own_private_names_alone() -> None:
    source = (
        "import dagster as dg\nfrom crypto_assets import warehouse as wh\n"
        "class Own(Base):\n    def f(self):\n        return self._lock, super()._options()\n"
        "def g(context: dg.AssetExecutionContext, conn):\n"
        "    wh._check_path(conn._private)\n    return context.instance.get_runs(), dg.__version__\n"
    )
    assert private_uses(source) == []


def test_both_instances_use_dagsters_own_storages() -> None:
    for path in INSTANCE_CONFIGS:
        config = yaml.safe_load(path.read_text())
        modules = [
            value
            for node in walk_config(config)
            if isinstance(node, dict)
            for key, value in node.items()
            if key == "module"
        ]
        assert modules == [], (path, modules)  # no class named by module path: no custom storage, launcher, ...
        assert not {"event_log_storage", "run_storage", "schedule_storage"} & set(config), path
    deploy = yaml.safe_load(INSTANCE_CONFIGS[1].read_text())
    assert deploy["storage"]["postgres"]["postgres_db"]["scheme"] == "postgresql+psycopg2"


def walk_config(node: object) -> Iterator[object]:
    yield node
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else []
    for child in children:
        yield from walk_config(child)


def test_dagster_is_a_compatible_range_not_a_pin() -> None:
    dependencies = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    dagster = [d for d in dependencies if is_dagster_module(d.split(">")[0].split("=")[0].replace("-", "_"))]
    assert {d.split(">")[0] for d in dagster} == {
        "dagster",
        "dagster-webserver",
        "dagster-dg-cli",
        "dagster-duckdb",
        "dagster-postgres",
    }
    assert not [d for d in dagster if "==" in d], dagster
