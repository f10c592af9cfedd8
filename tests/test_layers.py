"""The import graph: one-way layers (pyproject.toml's import-linter contract) and no cycle anywhere in workflow/."""

import grimp


def test_the_product_has_no_import_cycle():
    graph = grimp.build_graph("workflow")
    cycles = []
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            back = graph.find_shortest_chain(importer=imported, imported=module)
            if back:
                cycles.append(" -> ".join([module, *back]))
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_product_imports_nothing_of_the_simulator():
    graph = grimp.build_graph("workflow", "workflow_sandbox", include_external_packages=True)
    importers = {m for m in graph.modules if m == "workflow" or m.startswith("workflow.")}
    for forbidden in ("workflow_sandbox", "moto"):
        assert not any(graph.chain_exists(importer=m, imported=forbidden, as_packages=True) for m in importers), forbidden


def test_every_module_has_its_place_in_the_layers():
    import tomllib
    from pathlib import Path

    config = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    contract = next(c for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers")
    placed = {name.strip() for layer in contract["layers"] for name in layer.replace(":", "|").split("|")}
    graph = grimp.build_graph("workflow")
    modules = {m for m in graph.modules if m.count(".") == 1 and m not in ("workflow.__main__",)}
    assert modules - placed == set(), "modules missing from pyproject.toml's layers"
