"""PipelineImportError's fields and its one-line form."""

from __future__ import annotations

from apps.importers import PipelineImportError


def test_field_paths_are_rendered_like_the_engine_renders_them() -> None:
    def path(*parts: str | int) -> str | None:
        return PipelineImportError("x", field_path=parts).field_path

    assert path("spec", "templates", 2, "container", "image") == "spec.templates[2].container.image"
    assert path("root", "dag", "tasks", "train-1") == "root.dag.tasks['train-1']"
    assert path("metadata", "annotations", "a.io/title") == "metadata.annotations['a.io/title']"
    assert path() is None


def test_str_says_what_and_where() -> None:
    error = PipelineImportError(
        "unknown component 'comp-bar'",
        filename="pipeline.yaml",
        field_path=("root", "dag", "tasks", "train", "componentRef", "name"),
        line=12,
        column=9,
    )
    assert error.field_path == "root.dag.tasks.train.componentRef.name"
    assert str(error) == (
        "pipeline.yaml, line 12, at root.dag.tasks.train.componentRef.name: unknown component 'comp-bar'"
    )
    assert error.as_dict()["detail"] == str(error)


def test_str_shows_the_column_only_without_a_field_path() -> None:
    error = PipelineImportError("invalid YAML: oops", filename="p.yaml", line=3, column=7)
    assert str(error) == "p.yaml, line 3, column 7: invalid YAML: oops"
    assert str(PipelineImportError("the file is empty")) == "the file is empty"
