"""The new-run form: run settings plus one typed field per pipeline parameter.

Parameter fields are built from the spec's root ``inputDefinitions``: integers,
floats, booleans and strings get matching inputs; LIST and STRUCT parameters are
JSON text, checked here (valid JSON of the right shape) so the error appears next
to the field. The run service checks every value again."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from django import forms

from apps.core.choices import RunExecutor
from apps.core.forms import CanalForm, parse_json_text
from apps.engine.runtime_params import (
    BOOL_TYPES,
    DOUBLE_TYPES,
    INT_TYPES,
    LIST_TYPES,
    STRUCT_TYPES,
    ParameterSpec,
    tidy_numbers,
    type_label,
)

PARAM_PREFIX = "param__"
RUN_TYPES = (("one-off", "One-off"), ("recurring", "Recurring"))
CACHING_CHOICES = (
    ("", "As each task's spec says"),
    ("true", "On for every task"),
    ("false", "Off for every task"),
)


class JsonValueField(forms.CharField):
    """A JSON list or object typed into a textarea."""

    def __init__(self, *, want: type, **kwargs: Any) -> None:
        self.want = want
        kwargs.setdefault("widget", forms.Textarea(attrs={"rows": 3, "spellcheck": "false"}))
        super().__init__(strip=True, **kwargs)

    def clean(self, value: Any) -> Any:
        text = super().clean(value)
        if text in ("", None):
            return None
        parsed = parse_json_text(text)  # bounded nesting, checked text
        if not isinstance(parsed, self.want):
            what = "a JSON list, like [1, 2]" if self.want is list else 'a JSON object, like {"k": 1}'
            raise forms.ValidationError(f"Expected {what}.")
        return parsed


def _bool_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).lower() if value is not None else ""


def parameter_field(spec: ParameterSpec, initial: Any = None) -> forms.Field:
    """The form field for one pipeline parameter; ``initial`` overrides the spec default."""
    value = initial if initial is not None else (spec.default if spec.has_default else None)
    if spec.type in INT_TYPES and isinstance(value, float) and value.is_integer():
        value = int(value)  # the SDK writes integer defaults as 2.0
    required = spec.required
    help_text = spec.description
    common: dict[str, Any] = {"label": spec.name, "required": required, "help_text": help_text}
    field: forms.Field
    if spec.type in INT_TYPES:
        field = forms.IntegerField(**common, initial=value)
    elif spec.type in DOUBLE_TYPES:
        field = forms.FloatField(**common, initial=value, widget=forms.NumberInput(attrs={"step": "any"}))
    elif spec.type in BOOL_TYPES:
        choices = [("true", "true"), ("false", "false")]
        if not required:
            choices = [("", "— (pipeline default)"), *choices]
        field = forms.TypedChoiceField(
            **common,
            choices=choices,
            coerce=lambda v: v == "true",
            empty_value=None,
            initial=_bool_text(value),
        )
    elif spec.type in LIST_TYPES or spec.type in STRUCT_TYPES:
        want = list if spec.type in LIST_TYPES else dict
        # [1.0, 2.0] (how the SDK writes a List[int] default) is shown as KFP passes it: [1, 2].
        text = json.dumps(tidy_numbers(value), indent=2, ensure_ascii=False) if value is not None else ""
        field = JsonValueField(**common, want=want, initial=text)
        field.widget.attrs["placeholder"] = "JSON, like [1, 2]" if want is list else 'JSON, like {"k": 1}'
    else:
        text = value if isinstance(value, str) else (json.dumps(value) if value is not None else "")
        # An empty string is a legitimate value for a parameter with a default.
        field = forms.CharField(**{**common, "required": required}, initial=text, strip=False)
        field.widget.attrs["spellcheck"] = "false"
    default = spec.default
    if spec.type in INT_TYPES or spec.type in LIST_TYPES or spec.type in STRUCT_TYPES:
        default = tidy_numbers(default)
    # Attributes of Canal's own that the run form's template reads (field.field.type_label...).
    vars(field).update(
        parameter_type=spec.type,
        type_label=type_label(spec.type),
        has_default=spec.has_default,
        default_text=(default if isinstance(default, str) else json.dumps(default))
        if spec.has_default
        else "",
    )
    return field


class RunForm(CanalForm):
    """Name, description, experiment, one-off or recurring, advanced settings, parameters."""

    display_name = forms.CharField(label="Run name", max_length=255)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}), max_length=10_000)
    experiment = forms.ChoiceField(label="Experiment", required=False)
    run_type = forms.ChoiceField(
        label="Run type", choices=RUN_TYPES, initial="one-off", widget=forms.RadioSelect
    )
    always_latest = forms.BooleanField(
        required=False,
        label="Always use the latest version",
        help_text="Recurring runs: each firing runs the pipeline's newest version at that moment.",
    )
    pipeline_root = forms.CharField(
        required=False,
        max_length=1024,
        label="Custom pipeline root",
        help_text="Where this run's artifacts go (an absolute path or s3://…); empty for the default.",
    )
    enable_caching = forms.ChoiceField(label="Caching", choices=CACHING_CHOICES, required=False)
    service_account = forms.CharField(required=False, max_length=255, label="Service account")
    executor = forms.ChoiceField(
        label="Executor",
        required=False,
        choices=(("", "Default (the experiment's, else the server's)"), *RunExecutor.choices),
        help_text="Where the run executes: on Canal's workers, or as an Argo Workflow on Kubernetes.",
    )

    def __init__(
        self,
        *args: Any,
        parameters: Sequence[ParameterSpec] = (),
        experiments: Iterable[tuple[str, str]] = (),
        initial_parameters: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        experiment_field = self.fields["experiment"]
        assert isinstance(experiment_field, forms.ChoiceField)
        experiment_field.choices = [("", "Default"), *experiments]
        given = initial_parameters or {}
        self.parameter_specs = list(parameters)
        for spec in self.parameter_specs:
            self.fields[PARAM_PREFIX + spec.name] = parameter_field(spec, given.get(spec.name))

    @property
    def settings_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in ("display_name", "description", "experiment")]

    @property
    def advanced_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in ("pipeline_root", "enable_caching", "service_account", "executor")]

    @property
    def parameter_fields(self) -> list[forms.BoundField]:
        return [self[PARAM_PREFIX + spec.name] for spec in self.parameter_specs]

    def parameter_values(self) -> dict[str, Any]:
        """The parameters to send: empty optional fields are left out (the default applies)."""
        out: dict[str, Any] = {}
        for spec in self.parameter_specs:
            value = self.cleaned_data.get(PARAM_PREFIX + spec.name)
            if value is None or value == "":
                continue  # an empty optional field means "use the pipeline's default"
            out[spec.name] = value
        return out

    def caching(self) -> bool | None:
        value = self.cleaned_data.get("enable_caching")
        return None if not value else value == "true"

    def error_field_for(self, service_field: str | None) -> str | None:
        """The form field a service error's ``field`` refers to, if any."""
        if not service_field:
            return None
        if service_field.startswith("parameters."):
            name = PARAM_PREFIX + service_field.split(".", 1)[1]
            return name if name in self.fields else None
        mapping = {
            "display_name": "display_name",
            "experiment_id": "experiment",
            "pipeline_root": "pipeline_root",
            "executor": "executor",
        }
        return mapping.get(service_field)


class TaskRerunForm(CanalForm):
    """Re-run one step: its input parameters (prefilled with what the origin run recorded)
    and whether the tasks depending on it run again too."""

    include_downstream = forms.BooleanField(
        required=False,
        label="Include downstream tasks",
        help_text="Also run the tasks that depend on this step, fed with its new outputs.",
    )

    def __init__(self, *args: Any, parameters: Sequence[ParameterSpec] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for spec in parameters:
            self.fields[PARAM_PREFIX + spec.name] = parameter_field(spec)

    def parameter_fields(self) -> list[Any]:
        return [self[name] for name in self.fields if name.startswith(PARAM_PREFIX)]

    def parameters(self) -> dict[str, Any]:
        """The edited values by parameter name (an emptied optional field is left out)."""
        return {
            name.removeprefix(PARAM_PREFIX): value
            for name, value in self.cleaned_data.items()
            if name.startswith(PARAM_PREFIX) and value is not None
        }
