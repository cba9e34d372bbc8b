"""Batch files: YAML and CSV read into the same typed request; every malformed file refused with one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.batch.batchfile import BatchFileError, read_batch_file

YAML = """\
name: spring
jobs:
  - subject: S-1
    portrait: media/p.png
    driving: /abs/d.mp4
    purpose: Marketing
    channel: web
    territory: de
    seed: 7
"""


def test_yaml_and_csv_give_the_same_request(tmp_path: Path) -> None:
    (tmp_path / "b.yaml").write_text(YAML)
    (tmp_path / "spring.csv").write_text(
        "subject,portrait,driving,purpose,channel,territory,seed\nS-1,media/p.png,/abs/d.mp4,Marketing,web,de,7\n\n"
    )
    from_yaml = read_batch_file(tmp_path / "b.yaml")
    from_csv = read_batch_file(tmp_path / "spring.csv")
    assert from_yaml == from_csv
    job = from_yaml.jobs[0]
    assert job.portrait == tmp_path.resolve() / "media" / "p.png"
    assert job.driving == Path("/abs/d.mp4")
    assert (job.purpose, job.territory, job.seed) == ("marketing", "DE", 7)


def test_name_override_and_csv_without_seed(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("subject,portrait,driving,purpose,channel,territory\nS-1,p.png,d.mp4,ads,tv,FR\n")
    request = read_batch_file(path, name="override")
    assert request.name == "override"
    assert request.jobs[0].seed is None


@pytest.mark.parametrize(
    ("filename", "content", "message"),
    [
        ("b.txt", "x", "unknown format .txt"),
        ("b.yaml", "name: [unclosed", "not valid YAML at line 1"),
        ("b.yaml", "- a\n- b\n", "expected a mapping"),
        ("b.yaml", "name: n\njobs: []\n", "field `jobs`"),
        ("b.yaml", YAML.replace("    seed: 7\n", "    seed: 7\n    colour: red\n"), "job 1, field `colour`"),
        ("b.yaml", YAML.replace("    territory: de\n", ""), "job 1, field `territory`: Field required"),
        ("b.csv", "subject,portrait\nS,p\n", "missing column(s) channel, driving, purpose, territory"),
        ("b.csv", "subject,portrait,driving,purpose,channel,territory,extra\n", "unknown column(s) extra"),
        (
            "b.csv",
            "subject,portrait,driving,purpose,channel,territory,seed\nS,p,d,a,b,DE,-1\n",
            "job 1, field `seed`",
        ),
    ],
)
def test_malformed_files_are_refused_with_one_line(
    tmp_path: Path, filename: str, content: str, message: str
) -> None:
    path = tmp_path / filename
    path.write_text(content)
    with pytest.raises(BatchFileError) as caught:
        read_batch_file(path)
    text = str(caught.value)
    assert message in text
    assert "\n" not in text
    assert str(path) in text


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BatchFileError, match="cannot be read"):
        read_batch_file(tmp_path / "nope.yaml")
