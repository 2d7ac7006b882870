"""Hostile uploads (SECURITY-RELIABILITY test 12): each is refused with a message that says what and where.

None of these tests times anything; each input is built so that a correct
importer refuses it in milliseconds, and a broken one would hang or blow up.
"""

from __future__ import annotations

import os
import struct
import tarfile
import tracemalloc
from pathlib import Path

import pytest

from apps.importers import (
    DEFAULT_LIMITS,
    ImportLimits,
    PipelineImportError,
    import_pipeline,
    import_spec_dict,
)

from .conftest import MINIMAL_IR, MINIMAL_WORKFLOW, make_tar, make_zip


def refused(data: bytes, filename: str = "pipeline.yaml", **kwargs: object) -> PipelineImportError:
    with pytest.raises(PipelineImportError) as caught:
        import_pipeline(data, filename, **kwargs)  # type: ignore[arg-type]
    return caught.value


def test_billion_laughs_with_1000_levels_is_refused_early_and_small() -> None:
    lines = ["lol0: &a0 [lol]"]
    lines += [f"lol{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 1000)]
    data = "\n".join(lines).encode()
    tracemalloc.start()
    try:
        error = refused(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "alias bomb" in error.message
    assert "100,000 nodes" in error.message
    assert error.line == 6  # 10**5 is reached at the sixth level, not the thousandth
    assert error.field_path == "lol5[3]"
    assert peak < 5 * 1024 * 1024


def test_wide_alias_bomb_is_refused_by_expanded_size() -> None:
    # Only 60 aliases, but 2**30 nodes once expanded.
    lines = ["a0: &a0 [x]"] + [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}]" for i in range(1, 31)]
    error = refused("\n".join(lines).encode())
    assert "alias bomb" in error.message


def test_python_object_apply_tag_is_refused_without_running(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    data = MINIMAL_IR.replace(
        "  name: echo\nroot:", f"  name: !!python/object/apply:os.system ['touch {marker}']\nroot:"
    ).encode()
    error = refused(data)
    assert "YAML tag '!!python/object/apply:os.system' is not allowed" in error.message
    assert "run code" in error.message
    assert error.line == 16
    assert error.field_path == "pipelineInfo.name"
    assert str(error).startswith("pipeline.yaml, line 16, at pipelineInfo.name: ")
    assert not marker.exists()


@pytest.mark.parametrize(
    "tag", ["!!python/object/new:os.system", "!!python/name:os.system", "!!binary", "!Ref"]
)
def test_other_non_data_tags_are_refused(tag: str) -> None:
    error = refused(f"a: {tag} x\n".encode())
    assert f"YAML tag '{tag}' is not allowed" in error.message
    assert error.line == 1


def test_invalid_utf8_reports_the_byte_offset_and_line() -> None:
    text = MINIMAL_IR.encode()
    offset = text.index(b"hello world")
    data = text[:offset] + b"\xff\xfe" + text[offset:]
    error = refused(data)
    assert "not valid UTF-8" in error.message
    assert f"byte 0xff at byte offset {offset}" in error.message
    assert error.line == 11


def test_utf16_is_refused_by_its_bom() -> None:
    error = refused(MINIMAL_IR.encode("utf-16"))
    assert "encoded as UTF-16" in error.message


def test_file_over_the_size_limit_is_refused_before_parsing() -> None:
    data = b"#" * (DEFAULT_LIMITS.max_bytes + 1)
    error = refused(data)
    assert f"the limit is {DEFAULT_LIMITS.max_bytes:,} bytes" in error.message
    assert error.filename == "pipeline.yaml"


def test_zip_with_parent_directory_member_is_refused() -> None:
    data = make_zip({"../pipeline.yaml": MINIMAL_IR.encode()})
    error = refused(data, "pipeline.zip")
    assert "archive member '../pipeline.yaml' points outside the archive" in error.message
    assert error.filename == "pipeline.zip"


@pytest.mark.parametrize("name", ["/etc/pipeline.yaml", "C:/pipeline.yaml", "a\\..\\..\\pipeline.yaml"])
def test_zip_with_absolute_or_backslash_traversal_names_is_refused(name: str) -> None:
    error = refused(make_zip({name: MINIMAL_IR.encode()}), "pipeline.zip")
    assert f"archive member '{name}'" in error.message


def test_tar_with_symlink_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    data = make_tar(
        {"pipeline.yaml": MINIMAL_IR.encode()}, links={"other.yaml": (tarfile.SYMTYPE, "/etc/passwd")}
    )
    error = refused(data, "pipeline.tar.gz")
    assert "archive member 'other.yaml' is a symbolic link to '/etc/passwd'" in error.message
    assert list(tmp_path.iterdir()) == []  # nothing was extracted


def test_tar_with_hardlink_or_device_is_refused() -> None:
    hard = make_tar({"pipeline.yaml": b"x"}, links={"h.yaml": (tarfile.LNKTYPE, "pipeline.yaml")})
    assert "is a hard link to 'pipeline.yaml'" in refused(hard, "p.tgz").message
    device = make_tar({"pipeline.yaml": b"x"}, links={"dev": (tarfile.CHRTYPE, "")})
    assert "archive member 'dev' is a device or FIFO" in refused(device, "p.tgz").message


def test_zip_with_symlink_is_refused() -> None:
    data = make_zip({"pipeline.yaml": MINIMAL_IR.encode()}, symlinks={"link.yaml": "/etc/passwd"})
    assert "archive member 'link.yaml' is a symbolic link" in refused(data, "p.zip").message


def test_zip_bomb_is_refused_by_its_size() -> None:
    data = make_zip({"pipeline.yaml": b"\0" * (DEFAULT_LIMITS.max_uncompressed_bytes + 1)})
    assert len(data) < 100_000
    error = refused(data, "bomb.zip")
    assert "archive member 'pipeline.yaml' decompresses to more than 33,554,432 bytes" in error.message


def test_zip_member_that_lies_about_its_size_is_refused() -> None:
    data = bytearray(make_zip({"pipeline.yaml": b"\0" * 2_000_000}))
    # Claim 100 bytes in both the local header and the central directory.
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = data.index(signature)
        struct.pack_into("<I", data, at + offset, 100)
    error = refused(bytes(data), "liar.zip", limits=ImportLimits(max_uncompressed_bytes=1_000_000))
    assert "archive member 'pipeline.yaml'" in error.message


def test_gzip_bomb_is_refused_while_decompressing() -> None:
    data = make_tar({"pipeline.yaml": b"\0" * 3_000_000})
    error = refused(data, "bomb.tar.gz", limits=ImportLimits(max_uncompressed_bytes=1_000_000))
    assert "decompresses to more than 1,000,000 bytes" in error.message


def test_too_many_archive_members_are_refused_before_reading_them() -> None:
    data = make_zip({f"f{i}.txt": b"" for i in range(100)})
    assert "the zip archive has 100 members; at most 64 are allowed" in refused(data, "p.zip").message


def test_duplicate_keys_report_both_lines() -> None:
    data = MINIMAL_IR.replace(
        "        taskInfo:\n          name: echo\n",
        "        taskInfo:\n          name: echo\n          name: other\n",
    )
    error = refused(data.encode())
    assert "duplicate key 'name' in the same mapping (first at line 26)" in error.message
    assert error.line == 27
    assert error.field_path == "root.dag.tasks.echo.taskInfo"


def test_10k_task_ir_is_refused_by_the_task_limit() -> None:
    tasks = "".join(f"      t{i}: {{componentRef: {{name: comp-echo}}}}\n" for i in range(10_000))
    data = MINIMAL_IR.replace("    tasks:\n", "    tasks:\n" + tasks, 1).encode()
    error = refused(data)
    assert "the pipeline has 10,001 tasks; at most 5,000 are allowed" in error.message
    assert error.field_path == "root"


def test_10k_task_spec_dict_is_refused_by_the_task_limit() -> None:
    tasks = {f"t{i}": {"componentRef": {"name": "comp-echo"}} for i in range(10_000)}
    spec = {"pipelineInfo": {"name": "big"}, "schemaVersion": "2.1.0", "root": {"dag": {"tasks": tasks}}}
    with pytest.raises(PipelineImportError) as caught:
        import_spec_dict(spec)
    assert "10,000 tasks" in caught.value.message


def test_huge_yaml_is_refused_by_the_node_limit() -> None:
    data = ("items:\n" + "- x\n" * 150_000).encode()
    error = refused(data)
    assert "more than 100,000 nodes" in error.message
    assert error.line is not None


def test_misspelled_argo_field_is_refused_with_a_suggestion() -> None:
    data = MINIMAL_WORKFLOW.replace("    container:", "    contianer:").encode()
    error = refused(data, "wf.yaml")
    assert error.message == "unknown field 'contianer' (did you mean 'container'?)"
    assert error.field_path == "spec.templates[1].contianer"
    assert error.line == 17


def test_deep_nesting_is_refused() -> None:
    error = refused(("a: " + "[" * 100 + "]" * 100).encode())
    assert "nested deeper than 64 levels" in error.message
    assert error.line == 1
    # libyaml stops flow nesting at 1,000 levels by itself; either way it is a clear refusal.
    assert "nesting depth" in refused(("a: " + "[" * 5000 + "]" * 5000).encode()).message


def test_recursive_alias_is_refused() -> None:
    error = refused(b"a: &x [1, *x]\n")
    assert "recursive" in error.message
    assert error.field_path == "a[1]"


def test_png_and_random_bytes_are_refused_clearly() -> None:
    png = b"\x89PNG\r\n\x1a\n" + os.urandom(200)
    assert "this is a PNG image, not a pipeline" in refused(png, "pipeline.yaml").message
    noise = bytes(range(256)) * 8
    assert "binary" in refused(noise, "pipeline.yaml").message


def test_self_referencing_and_non_json_dicts_are_refused() -> None:
    loop: dict[str, object] = {"pipelineInfo": {"name": "x"}}
    loop["root"] = loop
    with pytest.raises(PipelineImportError) as caught:
        import_spec_dict(loop)
    assert "nested deeper than 64 levels" in caught.value.message
    with pytest.raises(PipelineImportError) as caught:
        import_spec_dict({"pipelineInfo": {"name": object()}})
    assert caught.value.field_path == "pipelineInfo.name"
    assert "not a JSON value" in caught.value.message


def test_nothing_is_written_while_importing_archives(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert import_pipeline(make_zip({"pipeline.yaml": MINIMAL_IR.encode()}), "p.zip").name == "echo"
    assert import_pipeline(make_tar({"pipeline.yaml": MINIMAL_IR.encode()}), "p.tar.gz").name == "echo"
    assert list(tmp_path.iterdir()) == []


def test_corrupt_zip_names_the_problem() -> None:
    good = make_zip({"pipeline.yaml": MINIMAL_IR.encode()})
    truncated = good[: len(good) // 2]
    assert "not a valid zip archive" in refused(truncated, "p.zip").message
    flipped = bytearray(good)
    flipped[good.index(b"pipeline.yaml") + 20] ^= 0xFF  # inside the deflated data
    assert "archive member 'pipeline.yaml' is corrupt" in refused(bytes(flipped), "p.zip").message


def test_unsafe_loaders_are_never_used() -> None:
    package = Path(__file__).resolve().parents[2] / "apps" / "importers"
    source = "".join(p.read_text() for p in package.glob("*.py"))
    for forbidden in ("UnsafeLoader", "FullLoader", "yaml.Loader", "yaml.load(", "unsafe_load"):
        assert forbidden not in source
