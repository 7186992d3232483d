"""Actions: buttons mounted on a workbook, sheet, file or document that start `domain:operation` jobs."""

from __future__ import annotations

from typing import Any, Literal

from listener.job import JobMode
from listener.wire import Model, NonEmpty, Operation

__all__ = [
    "Action",
    "ActionConstraint",
    "ActionMessage",
    "InputConstraint",
    "InputField",
    "InputFieldConfig",
    "InputForm",
    "InputOption",
]


class ActionMessage(Model):
    type: Literal["error", "info"] = "info"
    content: NonEmpty


class ActionConstraint(Model):
    """`hasData`: the sheet or workbook must have records; the others are shown by the UI."""

    type: Literal["hasAllValid", "hasSelection", "hasData"]


class InputOption(Model):
    value: str | int | float | bool
    label: str | None = None


class InputFieldConfig(Model):
    options: list[InputOption] = []


class InputConstraint(Model):
    type: Literal["required"]


class InputField(Model):
    """One field of an action's input form; its value lands in `job.input[key]`."""

    key: NonEmpty
    label: NonEmpty
    type: Literal["string", "textarea", "number", "boolean", "enum"] = "string"
    description: str | None = None
    default_value: Any = None
    config: InputFieldConfig | None = None
    constraints: list[InputConstraint] = []


class InputForm(Model):
    type: Literal["simple"] = "simple"
    fields: list[InputField]


class Action(Model):
    """A button mounted on a workbook, sheet, file or document that starts `domain:operation`."""

    operation: Operation
    label: NonEmpty
    description: str | None = None
    mode: JobMode = JobMode.FOREGROUND
    primary: bool = False
    confirm: bool = False
    tooltip: str | None = None
    messages: list[ActionMessage] = []
    constraints: list[ActionConstraint] = []
    input_form: InputForm | None = None
