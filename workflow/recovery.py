"""What state the cluster is in while a command changes it, and the ways out, shown if the command stops early.

Operations record it before each change, so an interrupt during a call says what may have happened. The
runner prints it with the commands that resume or undo. It is domain state, kept apart from progress lines.
"""

from dataclasses import dataclass, field


@dataclass
class Recovery:
    state: str | None = None  # the cluster's state in words; None when nothing is under way
    alternatives: list[tuple[str, str]] = field(default_factory=list)  # (what it does, command): other ways out
    resumable: bool = True  # False while re-running the command would repeat something still under way
    resume_when: str | None = None  # the condition a resume waits for, e.g. "once task 1a2b has stopped"
    milestone: str | None = None  # the last step done that a resume must not repeat (e.g. "migrated")
    resume_after: dict[str, str] = field(default_factory=dict)  # milestone -> the command that resumes after it

    def resume(self, command: str | None) -> str | None:
        """The command that resumes: `command`, or what replaces it once a milestone has passed."""
        return self.resume_after.get(self.milestone or "", command) if command else None
