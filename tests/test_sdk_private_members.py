"""The packages use singer-sdk's public API; private SDK members only in each `sdk_compat.py`.

Nothing here is a hand-kept list. The private surface is read from the installed `singer_sdk`:

* private modules: every module walked by `pkgutil` with an underscore-prefixed part
  (`singer_sdk.helpers._typing`, `singer_sdk.streams._state`, ...);
* private members: every underscore-prefixed, non-dunder name an SDK class defines, as a class
  attribute or method (`vars(cls)`, as declared in its source) or as an instance attribute its
  methods assign (`self._tap = ...`);
* hidden classes: classes only private modules define (no public module's `__all__` lists
  them), and the public properties whose return annotation names one (`Stream.state_manager ->
  StreamStateManager`): every member of such an object is private, `is_flushed` included.

Then every `.py` file of the three packages, except `sdk_compat.py`, is parsed and these fail:

* an import of a private SDK module, or of an underscore-prefixed name from an SDK module;
* in a class derived from an SDK class (directly or through the package's own classes): a method
  or class attribute named like a private member of its SDK bases (an override), or
  `self.`/`cls.`/`super().` access to one;
* anywhere: `.name` access to a private SDK member, unless the package defines that name
  itself in its own (non-SDK) classes (e.g. a `_lock` of its own); and `.state_manager.name`
  (any member reached through a property that returns a hidden class).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import textwrap
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest
import singer_sdk

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIRS = ("tap-crm-msi", "target-marketo-msi", "msi-common")
COMPAT_MODULE = "sdk_compat.py"
SKIPPED_DIRS = {".venv", "build", "dist", "__pycache__", ".meltano", ".sandbox", "output"}


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _is_dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")


# The installed SDK's private surface -----------------------------------------------------------
@dataclass
class SdkSurface:
    """What the installed singer_sdk keeps private, and what it offers publicly."""

    modules: dict[str, object] = field(default_factory=dict)  # dotted name -> module
    private_modules: set[str] = field(default_factory=set)
    # class -> underscore names it defines itself (vars and `self._x = ...` in its methods)
    own_private: dict[type, set[str]] = field(default_factory=dict)
    private_members: set[str] = field(default_factory=set)
    # classes only private modules define (not in a public module's `__all__`)
    hidden_classes: set[str] = field(default_factory=set)
    # public property -> what it returns, for properties that return a hidden class's instance
    gateways: dict[str, str] = field(default_factory=dict)

    def private_of(self, cls: type) -> set[str]:
        """Underscore names `cls` has from the SDK classes in its MRO."""
        names: set[str] = set()
        for klass in cls.__mro__:
            names |= self.own_private.get(klass, set())
        return names


def _defined_by(cls: type) -> set[str]:
    """The names a class defines itself: attributes and methods in `vars(cls)` that its source
    declares (not those Python adds, such as ABC's `_abc_impl`), and what its methods assign on
    `self` or `cls`."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError, SyntaxError):
        return set(vars(cls))
    node = tree.body[0]
    assert isinstance(node, ast.ClassDef)
    declared = {name for name, _ in _class_level_names(node)}
    return (set(vars(cls)) & declared) | set(_self_assigned(node))


def _names_in(annotation: str) -> set[str]:
    """The names an annotation's text mentions (`StreamStateManager | None` -> both)."""
    try:
        tree = ast.parse(annotation, mode="eval")
    except SyntaxError:
        return set()
    return {
        node.id if isinstance(node, ast.Name) else node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Name | ast.Attribute)
    }


@cache
def sdk_surface() -> SdkSurface:
    surface = SdkSurface()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for info in pkgutil.walk_packages(singer_sdk.__path__, "singer_sdk."):
            try:
                surface.modules[info.name] = importlib.import_module(info.name)
            except ImportError:  # an optional extra not installed: its names cannot be used
                continue
    surface.modules["singer_sdk"] = singer_sdk
    for name in surface.modules:
        if any(_is_private(part) for part in name.split(".")):
            surface.private_modules.add(name)

    exported: set[int] = set()
    for name, module in surface.modules.items():
        if name not in surface.private_modules:
            for export in getattr(module, "__all__", ()):
                exported.add(id(getattr(module, export, None)))

    hidden_classes: set[str] = set()
    public_classes: set[str] = set()
    for name, module in surface.modules.items():
        for obj in vars(module).values():
            if not inspect.isclass(obj) or obj.__module__ != name or obj in surface.own_private:
                continue
            defined = _defined_by(obj)
            surface.own_private[obj] = {n for n in defined if _is_private(n)}
            surface.private_members |= surface.own_private[obj]
            if name in surface.private_modules and id(obj) not in exported:
                hidden_classes.add(obj.__name__)
            else:
                public_classes.add(obj.__name__)
    surface.hidden_classes = hidden_classes - public_classes
    for cls in surface.own_private:
        if cls.__module__ in surface.private_modules:
            continue
        for attr, value in vars(cls).items():
            if attr.startswith("_") or not isinstance(value, property) or value.fget is None:
                continue
            returned = inspect.get_annotations(value.fget).get("return")
            if isinstance(returned, str) and _names_in(returned) & surface.hidden_classes:
                surface.gateways[attr] = f"{cls.__name__}.{attr} -> {returned}"
    return surface


# The packages' code ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Violation:
    path: Path
    line: int
    what: str

    def __str__(self) -> str:
        path = (
            self.path.relative_to(REPO_ROOT) if self.path.is_relative_to(REPO_ROOT) else self.path
        )
        return f"{path}:{self.line}: {self.what}"


@dataclass
class ParsedFile:
    path: Path
    tree: ast.Module
    # local name -> dotted SDK object it was imported as (`Stream` -> `singer_sdk.Stream`)
    sdk_imports: dict[str, str]


@dataclass
class PackageIndex:
    files: list[ParsedFile]
    # class name -> (file, ClassDef); the packages' class names are unique enough for bases
    classes: dict[str, tuple[ParsedFile, ast.ClassDef]]


def package_files(package_dir: Path) -> Iterator[Path]:
    for path in sorted(package_dir.rglob("*.py")):
        if SKIPPED_DIRS.intersection(path.relative_to(package_dir).parts):
            continue
        yield path


def _sdk_imports(tree: ast.Module) -> dict[str, str]:
    imports: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "singer_sdk":
            for alias in node.names:
                imports[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "singer_sdk":
                    imports[alias.asname or alias.name.split(".")[0]] = (
                        alias.name if alias.asname else "singer_sdk"
                    )
    return imports


def index_package(package_dir: Path) -> PackageIndex:
    files = []
    classes: dict[str, tuple[ParsedFile, ast.ClassDef]] = {}
    for path in package_files(package_dir):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        parsed = ParsedFile(path, tree, _sdk_imports(tree))
        files.append(parsed)
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                classes.setdefault(node.name, (parsed, node))
    return PackageIndex(files, classes)


def _resolve_sdk(dotted: str) -> object | None:
    """The SDK object a dotted import path names (`singer_sdk.sinks.BatchSink`), if any."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        module = sdk_surface().modules.get(".".join(parts[:cut]))
        if module is None:
            continue
        obj: object = module
        for attr in parts[cut:]:
            obj = getattr(obj, attr, None)
            if obj is None:
                return None
        return obj
    return None


def _base_expr_name(base: ast.expr) -> str | None:
    """`Stream` for `Stream`, `singer_sdk.Stream` for an attribute chain."""
    if isinstance(base, ast.Name):
        return base.id
    if isinstance(base, ast.Attribute):
        inner = _base_expr_name(base.value)
        return f"{inner}.{base.attr}" if inner else None
    if isinstance(base, ast.Subscript):  # Generic[...] and the like
        return _base_expr_name(base.value)
    return None


def sdk_bases(
    index: PackageIndex, parsed: ParsedFile, node: ast.ClassDef, seen: frozenset[str] = frozenset()
) -> list[type]:
    """The SDK classes `node` derives from, directly or through the package's own classes."""
    found: list[type] = []
    for base in node.bases:
        name = _base_expr_name(base)
        if name is None:
            continue
        head, _, rest = name.partition(".")
        if head in parsed.sdk_imports:
            dotted = parsed.sdk_imports[head] + (f".{rest}" if rest else "")
            obj = _resolve_sdk(dotted)
            if inspect.isclass(obj):
                found.append(obj)
        elif name in index.classes and name not in seen:
            base_file, base_node = index.classes[name]
            found.extend(sdk_bases(index, base_file, base_node, seen | {node.name}))
    return found


def _class_level_names(node: ast.ClassDef) -> Iterator[tuple[str, int]]:
    for item in node.body:
        if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
            yield item.name, item.lineno
        elif isinstance(item, ast.Assign):
            for target in item.targets:
                if isinstance(target, ast.Name):
                    yield target.id, item.lineno
        elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
            yield item.target.id, item.lineno


def _self_assigned(node: ast.AST) -> Iterator[str]:
    """Attributes assigned on `self` or `cls` anywhere under `node`."""
    for sub in ast.walk(node):
        if (
            isinstance(sub, ast.Attribute)
            and isinstance(sub.ctx, ast.Store)
            and isinstance(sub.value, ast.Name)
            and sub.value.id in {"self", "cls"}
        ):
            yield sub.attr


def own_names(index: PackageIndex) -> set[str]:
    """Names the package defines in its own classes that do not derive from the SDK."""
    names: set[str] = set()
    for parsed in index.files:
        for node in ast.walk(parsed.tree):
            if isinstance(node, ast.ClassDef) and not sdk_bases(index, parsed, node):
                names.update(name for name, _ in _class_level_names(node))
                names.update(_self_assigned(node))
    return names


def _is_self_like(value: ast.expr) -> bool:
    if isinstance(value, ast.Name):
        return value.id in {"self", "cls"}
    return (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.Name)
        and value.func.id == "super"
    )


def import_violations(parsed: ParsedFile) -> Iterator[Violation]:
    surface = sdk_surface()
    for node in ast.walk(parsed.tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "singer_sdk":
            module = node.module or ""
            if any(_is_private(part) for part in module.split(".")):
                yield Violation(parsed.path, node.lineno, f"import from private module {module}")
                continue
            for alias in node.names:
                if _is_private(alias.name):
                    kind = (
                        "private module"
                        if f"{module}.{alias.name}" in surface.private_modules
                        else "private name"
                    )
                    yield Violation(
                        parsed.path, node.lineno, f"import of {kind} {module}.{alias.name}"
                    )
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "singer_sdk" and any(_is_private(p) for p in parts):
                    yield Violation(
                        parsed.path, node.lineno, f"import of private module {alias.name}"
                    )


def member_violations(
    index: PackageIndex, parsed: ParsedFile, own: set[str]
) -> Iterator[Violation]:
    surface = sdk_surface()
    everywhere = surface.private_members - own
    reported: set[tuple[int, str]] = set()

    def report(line: int, attr: str, what: str) -> Iterator[Violation]:
        if (line, attr) not in reported:
            reported.add((line, attr))
            yield Violation(parsed.path, line, what)

    for node in ast.walk(parsed.tree):
        if not isinstance(node, ast.ClassDef):
            continue
        bases = sdk_bases(index, parsed, node)
        if not bases:
            continue
        private = set().union(*(surface.private_of(base) for base in bases))
        base_names = ", ".join(sorted({b.__name__ for b in bases}))
        for name, line in _class_level_names(node):
            if name in private:
                yield from report(line, name, f"{node.name} overrides {name} of SDK {base_names}")
        for sub in ast.walk(node):
            if isinstance(sub, ast.Attribute) and sub.attr in private and _is_self_like(sub.value):
                yield from report(
                    sub.lineno, sub.attr, f"{node.name} uses .{sub.attr} of SDK {base_names}"
                )

    for sub in ast.walk(parsed.tree):
        if not isinstance(sub, ast.Attribute):
            continue
        if sub.attr in everywhere:
            yield from report(sub.lineno, sub.attr, f"uses .{sub.attr} (a private SDK member)")
        elif (
            isinstance(sub.value, ast.Attribute)
            and sub.value.attr in surface.gateways
            and not _is_dunder(sub.attr)
        ):
            gateway = surface.gateways[sub.value.attr]
            yield from report(
                sub.lineno, sub.attr, f"uses .{sub.attr} of a private SDK class ({gateway})"
            )


def find_violations(package_dirs: tuple[str, ...] = PACKAGE_DIRS) -> list[Violation]:
    violations: list[Violation] = []
    for package in package_dirs:
        index = index_package(REPO_ROOT / package)
        own = own_names(index)
        for parsed in index.files:
            if parsed.path.name == COMPAT_MODULE:
                continue
            violations.extend(import_violations(parsed))
            violations.extend(member_violations(index, parsed, own))
    return sorted(set(violations), key=lambda v: (str(v.path), v.line, v.what))


# Tests --------------------------------------------------------------------------------------------
def test_the_sdk_surface_is_read_from_the_installed_sdk() -> None:
    """The analysis finds what it must (a guard against it silently finding nothing)."""
    surface = sdk_surface()
    assert "singer_sdk.helpers._typing" in surface.private_modules
    assert "singer_sdk.streams._state" in surface.private_modules
    from singer_sdk import Stream
    from singer_sdk.target_base import Target

    stream_private = surface.private_of(Stream)
    assert {"_write_record_message", "_tap", "_stream_version"} <= stream_private
    assert "_handle_max_record_age" in surface.private_of(Target)
    assert "StreamStateManager" in surface.hidden_classes  # singer_sdk.streams._state's
    assert "state_manager" in surface.gateways  # Stream.state_manager returns one
    assert "Stream" not in surface.hidden_classes


def test_the_analysis_catches_each_kind_of_use(tmp_path: Path) -> None:
    """Imports, overrides, self/super access and hidden members are caught; own names are not."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "bad.py").write_text(
        textwrap.dedent(
            """
            from singer_sdk import Stream
            from singer_sdk.helpers._util import utc_now
            import singer_sdk.helpers._typing as typing_

            class Base(Stream):
                pass

            class Child(Base):
                def _write_record_message(self, record):
                    super()._write_record_message(record)
                    self._tap.write_message(record)
                    self.state_manager.is_flushed = False

            class Own:
                def __init__(self):
                    self._lock = None

                def work(self, other):
                    return self._lock, other._lock
            """
        )
    )
    (package / "sdk_compat.py").write_text("from singer_sdk.helpers._util import utc_now\n")
    index = index_package(package)
    own = own_names(index)
    (bad,) = [f for f in index.files if f.path.name == "bad.py"]
    found = {(v.line, v.what) for v in import_violations(bad)} | {
        (v.line, v.what) for v in member_violations(index, bad, own)
    }
    lines = {line for line, _ in found}
    assert {3, 4, 10, 11, 12, 13} <= lines, found
    assert not lines & {17, 20}, found  # the package's own `_lock`


def test_no_private_sdk_members_outside_sdk_compat() -> None:
    violations = find_violations()
    if violations:
        pytest.fail(
            "private singer-sdk members used outside sdk_compat.py (use the public API, or "
            "move the use into the package's sdk_compat.py):\n"
            + "\n".join(str(v) for v in violations)
        )
