"""An import-linter contract type: packages that may import only the standard library and a list.

import-linter's own `forbidden` contract names what may not be imported; the pure core's rule
is the other way round (the standard library and numpy, nothing else), so a dependency added
later is caught without anyone remembering to forbid it.
"""

from __future__ import annotations

import sys

from grimp import ImportGraph
from importlinter.application import output
from importlinter.domain import fields
from importlinter.domain.contract import Contract, ContractCheck


class StdlibOnlyContract(Contract):
    """`source_modules` and their descendants import nothing outside their root package but the
    standard library and `allowed_modules` (top-level names)."""

    type_name = "stdlib_only"

    source_modules = fields.SetField(subfield=fields.StringField())
    allowed_modules = fields.SetField(subfield=fields.StringField(), required=False)

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        """Kept when no module under a source imports an external package outside the list."""
        allowed = set(self.allowed_modules or ()) | set(sys.stdlib_module_names)
        violations = []
        for source in sorted(self.source_modules):
            root = source.split(".")[0]
            for module in sorted({source} | graph.find_descendants(source)):
                for imported in sorted(graph.find_modules_directly_imported_by(module)):
                    top = imported.split(".")[0]
                    if top != root and top not in allowed:
                        violations.append(f"{module} imports {imported}")
        return ContractCheck(kept=not violations, metadata={"violations": violations})

    def render_broken_contract(self, check: ContractCheck) -> None:
        """One line per import outside the standard library and the allowed modules."""
        for line in check.metadata["violations"]:
            output.print_error(line, bold=False)
