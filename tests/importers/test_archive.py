"""Archive uploads: which member is the pipeline, and which archives are refused."""

from __future__ import annotations

import gzip

import pytest

from apps.importers import PipelineImportError, import_pipeline

from .conftest import MINIMAL_IR, make_tar, make_zip

IR = MINIMAL_IR.encode()
OTHER = MINIMAL_IR.replace("name: echo\nroot", "name: other\nroot").encode()


def refused(data: bytes, filename: str) -> str:
    with pytest.raises(PipelineImportError) as caught:
        import_pipeline(data, filename)
    return str(caught.value)


@pytest.mark.parametrize("filename", ["p.tar.gz", "p.tgz", "no-extension"])
def test_tar_gz_is_detected_by_content(filename: str) -> None:
    result = import_pipeline(make_tar({"dir/my.yaml": IR}), filename)
    assert result.name == "echo"
    assert result.archive_member == "dir/my.yaml"
    assert result.source_filename == filename
    assert result.source_text == MINIMAL_IR


def test_plain_tar_and_zip_named_yaml_are_read_too() -> None:
    assert import_pipeline(make_tar({"a.yml": IR}, gz=False), "p.tar").name == "echo"
    assert import_pipeline(make_zip({"a.yaml": IR}), "looks-like.yaml").archive_member == "a.yaml"


def test_pipeline_yaml_wins_over_other_yaml_files() -> None:
    data = make_zip({"other.yaml": OTHER, "pipeline.yaml": IR, "README.md": b"hi"})
    assert import_pipeline(data, "p.zip").name == "echo"


def test_macos_metadata_is_ignored() -> None:
    data = make_zip({"__MACOSX/._x.yaml": b"\0\1", "x.yaml": IR})
    assert import_pipeline(data, "p.zip").archive_member == "x.yaml"


def test_two_yaml_files_without_pipeline_yaml_are_ambiguous() -> None:
    message = refused(make_zip({"a.yaml": IR, "b.yml": OTHER}), "p.zip")
    assert "holds 2 YAML files ('a.yaml', 'b.yml')" in message
    assert "pipeline.yaml" in message


def test_archive_without_yaml_is_refused() -> None:
    assert "holds no .yaml or .yml file (it holds 'notes.txt')" in refused(
        make_zip({"notes.txt": b"x"}), "p.zip"
    )


def test_empty_archives_are_refused() -> None:
    empty_zip = b"PK\x05\x06" + b"\0" * 18
    assert "the zip archive is empty" in refused(empty_zip, "p.zip")
    assert "the tar archive is empty" in refused(make_tar({}), "p.tar.gz")


def test_gzip_that_is_not_a_tar_is_refused() -> None:
    assert "the gzip file does not hold a tar archive" in refused(gzip.compress(IR), "pipeline.yaml.gz")


def test_truncated_gzip_is_refused() -> None:
    data = make_tar({"pipeline.yaml": IR})
    assert "not a valid gzip file" in refused(data[:-20], "p.tgz")


def test_member_content_errors_name_the_member() -> None:
    bad = MINIMAL_IR.replace("pipelineInfo:", "pipelineInfos:").encode()
    message = refused(make_zip({"pipeline.yaml": bad}), "upload.zip")
    assert message.startswith(
        "upload.zip/pipeline.yaml, line 15, at pipelineInfos: unknown field 'pipelineInfos'"
    )


def test_archive_member_that_is_binary_is_refused() -> None:
    assert "binary file" in refused(make_zip({"pipeline.yaml": b"\x89PNG\r\n\x1a\n\0\0"}), "p.zip")
