"""What state the cluster is in while a command changes it, and the ways out, shown if the command stops early.

Operations record it before each change, so an interrupt during a call says what may have happened. The
runner prints it with the commands that resume or undo. It is domain state, kept apart from progress lines.
"""

import shlex
from dataclasses import dataclass, field


@dataclass
class Recovery:
    state: str | None = None  # the cluster's state in words; None when nothing is under way
    alternatives: list[tuple[str, str]] = field(default_factory=list)  # (what it does, command): other ways out
    resumable: bool = True  # False while re-running the command would repeat something still under way
    resume_when: str | None = None  # the condition a resume waits for, e.g. "once task 1a2b has stopped"
    milestone: str | None = None  # the last step done that a resume must not repeat (e.g. "migrated")
    resume_after: dict[str, str] = field(default_factory=dict)  # milestone -> the command that resumes after it
    # What can be done meanwhile, whatever comes next: reading a running one-off task's log, stopping it.
    next_steps: list["NextStep"] = field(default_factory=list)

    def resume(self, command: str | None) -> str | None:
        """The command that resumes: `command`, or what replaces it once a milestone has passed."""
        return self.resume_after.get(self.milestone or "", command) if command else None


@dataclass(frozen=True)
class NextStep:
    """A command a result suggests, as one shell line, and what it is for."""

    purpose: str
    command: str

    def lines(self, width: int = 80) -> str:
        """The purpose, then the command continued with backslashes to fit `width`: pasted, it runs as printed."""
        import textwrap

        purpose = textwrap.fill(f"{self.purpose}:", width, subsequent_indent="  ", break_on_hyphens=False)
        return f"{purpose}\n{shell_lines(shlex.split(self.command), width - 4)}"


def shell_lines(words: list[str], width: int = 76, indent: str = "    ") -> str:
    """Words as one shell command, continued with backslashes so no line passes `width` columns; an option
    stays on the line of its value."""
    units: list[str] = []
    for word in map(shlex.quote, words):
        if units and units[-1].startswith("-") and " " not in units[-1] and not word.startswith("-"):
            units[-1] += " " + word
        else:
            units.append(word)
    # An option whose value alone nearly fills a line is split from it: the value then gets a line of its own.
    units = [part for unit in units
             for part in (unit.split(" ", 1) if " " in unit and len(indent) + 2 + len(unit) + 2 > width else [unit])]
    lines, line = [], ""
    for unit in units:
        if line and len(indent) + len(line) + 1 + len(unit) + 2 > width:
            lines.append(line + " \\")
            line = "  " + unit
        else:
            line = f"{line} {unit}" if line else unit
    lines.append(line)
    return "\n".join(indent + line for line in lines)
