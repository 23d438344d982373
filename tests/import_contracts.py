"""An import-linter contract type of our own: no import cycle between modules.

import-linter's ``acyclic_siblings`` looks for cycles between sibling
packages taken whole, which forbids more than an import cycle (an app's API
base view listing the authentication classes of its sub-packages, whose views
derive from that base, is such a package-level loop without any module
importing itself back). This contract forbids exactly what breaks: a module
that, through the imports of others, imports itself again. Function-local
imports count, as everywhere in import-linter, since they loop at run time
just the same.

Used by ``.importlinter`` (``type = acyclic_modules``); ``lint-imports`` runs
it with the other contracts and jagcall/tests/test_architecture.py runs
``lint-imports``.
"""

from __future__ import annotations

from importlinter.application import contract_utils, output
from importlinter.application.contract_utils import AlertLevel
from importlinter.domain import fields
from importlinter.domain.contract import Contract, ContractCheck


class AcyclicModulesContract(Contract):
    """
    Options:
        - containers:        packages whose modules must not import one another in a cycle.
        - skip_packages_named: modules with one of these names in their path are left out
                             (tests and migrations: what they import is not the app's design).
        - ignore_imports:    import expressions to leave out, as in the built-in contracts.
    """

    type_name = "acyclic_modules"

    containers = fields.SetField(subfield=fields.StringField())
    skip_packages_named = fields.SetField(subfield=fields.StringField(), required=False)
    ignore_imports = fields.SetField(subfield=fields.ImportExpressionField(), required=False)
    unmatched_ignore_imports_alerting = fields.EnumField(AlertLevel, default=AlertLevel.ERROR)

    def check(self, graph, verbose: bool) -> ContractCheck:
        removal = contract_utils.remove_ignored_imports_and_report(
            graph=graph,
            ignore_imports=self.ignore_imports,  # type: ignore[arg-type]
            unmatched_alerting=self.unmatched_ignore_imports_alerting,  # type: ignore[arg-type]
        )
        skipped = set(self.skip_packages_named or ())  # type: ignore[arg-type]
        modules = set()
        for container in sorted(self.containers):  # type: ignore[arg-type]
            if container not in graph.modules:
                raise ValueError(f"acyclic_modules: no module named {container!r} in the graph.")
            modules |= {container, *graph.find_descendants(container)}
        modules = {m for m in modules if not skipped.intersection(m.split("."))}
        edges = {m: sorted(graph.find_modules_directly_imported_by(m) & modules) for m in sorted(modules)}

        cycles = []
        for component in _strongly_connected(edges):
            members = set(component)
            imports = []
            for importer in component:
                for imported in edges[importer]:
                    if imported in members:
                        lines = sorted(
                            d["line_number"] for d in graph.get_import_details(importer=importer, imported=imported)
                        )
                        imports.append((importer, imported, lines))
            cycles.append({"modules": component, "imports": imports})
        return ContractCheck(
            kept=not cycles,
            warnings=list(removal.warnings),
            metadata={"cycles": cycles},
        )

    def render_broken_contract(self, check: ContractCheck) -> None:
        for cycle in check.metadata["cycles"]:
            output.print_error(f"These modules import one another in a cycle: {', '.join(cycle['modules'])}")
            output.new_line()
            for importer, imported, lines in cycle["imports"]:
                where = ", ".join(f"l.{line}" for line in lines)
                output.indent_cursor()
                output.print_error(f"- {importer} -> {imported} ({where})", bold=False)
            output.new_line()
        output.print(
            "Break each cycle: move what both sides need into a module that imports neither, or let the lower "
            "module receive what it needs (an argument, a registry, a signal) instead of importing the higher one."
        )


def _strongly_connected(edges: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iteratively: the groups of two or more modules (or one importing itself) in a cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(edges[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            advanced = False
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = counter
                    counter += 1
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(edges[successor])))
                    advanced = True
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in edges[node]:
                    found.append(sorted(component))
    return sorted(found)
