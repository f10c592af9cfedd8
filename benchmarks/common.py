"""What the benchmark scripts share: the repository's root, git, a commit's tree exported, and Markdown tables."""

import io
import os
import subprocess
import tarfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", ROOT, *args], capture_output=True, text=True, check=True).stdout.strip()


def export(commit: str, into: str) -> str:
    """The commit's tree, read-only from git (no worktree, no change to the repository's state)."""
    archive = subprocess.run(["git", "-C", ROOT, "archive", commit], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:") as tar:
        tar.extractall(into, filter="data")
    return into


def table(header: list[str], rows: list[list], text_columns: int = 1) -> str:
    """A Markdown table: the first `text_columns` columns aligned left, the figures after them right."""
    align = ["---"] * text_columns + ["---:"] * (len(header) - text_columns)
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    return "\n".join(lines + ["| " + " | ".join(str(x) for x in row) + " |" for row in rows])


def against_targets(rows: list[list], heading: str = "Against the target") -> str:
    """The closing table every benchmark prints: each figure against its target (what, target, measured, met)."""
    return f"\n{heading}:\n\n" + table(["what", "target", "measured", ""], rows, 4)
