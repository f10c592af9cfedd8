"""Packaging: the distribution's own name, and a Pipfile and Pipfile.lock that name no package index."""

import json
import tomllib
from importlib import metadata
from pathlib import Path

import workflow

ROOT = Path(__file__).resolve().parent.parent
DISTRIBUTION = "airflow-ecs-workflow"  # `workflow` on the public index is another project


def test_the_distribution_provides_the_workflow_package_and_command():
    dist = metadata.distribution(DISTRIBUTION)
    assert dist.version == workflow.__version__
    assert [ep.value for ep in dist.entry_points if ep.group == "console_scripts"] == ["workflow.cli:main"]


def test_pipfile_installs_the_distribution_and_names_no_index():
    pipfile = tomllib.loads((ROOT / "Pipfile").read_text())
    assert pipfile["packages"][DISTRIBUTION] == {"path": ".", "editable": True}
    assert pipfile["source"] == []
    assert pipfile["pipenv"]["install_search_all_sources"] is True


def test_pipfile_lock_names_no_index():
    lock = json.loads((ROOT / "Pipfile.lock").read_text())
    assert lock["_meta"]["sources"] == []
    assert lock["default"][DISTRIBUTION] == {"editable": True, "path": "."}
    indexed = [name for section, packages in lock.items() if section != "_meta" for name, p in packages.items() if "index" in p]
    assert indexed == []


def test_make_promote_installs_only_the_runtime_packages_and_only_when_needed():
    import subprocess

    planned = subprocess.run(["make", "-n", "promote"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "scripts/install-runtime" in planned
    assert "--dev" not in planned
    script = (ROOT / "scripts" / "install-runtime").read_text()
    assert "pipenv install --deploy" in script
    assert "--dev" not in script.replace("no --dev", "")
    assert "workflow\" --version" in script  # an installed environment is used as it is
