"""Kernel module dependency order, read from a `modules.dep` file (as `depmod` writes it).

A `modules.dep` line is `path/to/mod.ko: path/to/dep1.ko path/to/dep2.ko ...`; it lists all
dependencies, direct and indirect. Module names use `_` where file names may use `-`.
"""

from collections.abc import Iterable, Mapping

_SUFFIXES = (".ko.xz", ".ko.zst", ".ko.gz", ".ko")


def module_name(path: str) -> str:
    """The kernel's name for a module file: `.../kvm-amd.ko.xz` -> `kvm_amd`."""
    base = path.rsplit("/", 1)[-1]
    for suffix in _SUFFIXES:
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return base.replace("-", "_")


class ModuleDep:
    """One module's file (relative to the modules directory) and its dependencies' names."""

    def __init__(self, path: str, depends: tuple[str, ...]) -> None:
        self.path = path
        self.depends = depends


def parse_modules_dep(text: str) -> dict[str, ModuleDep]:
    """Map each module name in a `modules.dep` text to its file and dependencies."""
    table: dict[str, ModuleDep] = {}
    for line in text.splitlines():
        path, sep, rest = line.partition(":")
        if not sep:
            continue
        deps = tuple(module_name(p) for p in rest.split())
        table[module_name(path.strip())] = ModuleDep(path.strip(), deps)
    return table


def load_order(
    wanted: Iterable[str], table: Mapping[str, ModuleDep], builtin: frozenset[str] = frozenset()
) -> list[str]:
    """Names to load, each after its dependencies, in the order `wanted` asks where free.

    Built-in modules are skipped; a name that is neither built in nor in `table` raises
    KeyError with that name.
    """
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str, depth: int) -> None:
        name = name.replace("-", "_")
        if name in seen or name in builtin:
            return
        if depth > len(table):
            raise ValueError(f"dependency cycle through {name}")
        entry = table[name]
        seen.add(name)
        # modules.dep lists indirect dependencies too, deepest last: visiting from the
        # end loads the deepest first; recursion orders whatever remains.
        for dep in reversed(entry.depends):
            visit(dep, depth + 1)
        order.append(name)

    for name in wanted:
        visit(name, 0)
    return order


def parse_builtin(text: str) -> frozenset[str]:
    """Names in a `modules.builtin` text (one module path a line)."""
    return frozenset(module_name(line.strip()) for line in text.splitlines() if line.strip())
