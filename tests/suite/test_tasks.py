"""Finding and checking benchmark suites: task folders, splits, bad suites, published numbers."""

from __future__ import annotations

import pytest

from genomamba.errors import InputDataError
from genomamba.suite.tasks import discover_tasks, load_task, read_published
from tests.suite.suite_cases import write_task

TRAIN = "sequence,label\nACGTAC,a\nGGCCTA,b\nACGGTT,a\nTTTACG,b\n"
TEST = "sequence,label\nACGTAA,a\nGGCCTT,b\n"


def test_a_suite_is_a_folder_of_tasks_and_a_task_folder_is_a_suite_of_one(tmp_path):
    write_task(tmp_path / "s" / "beta", TRAIN, TEST, dev=TEST)
    write_task(tmp_path / "s" / "alpha", TRAIN, TEST)
    tasks = discover_tasks([tmp_path / "s"])
    assert [t.name for t in tasks] == ["alpha", "beta"]
    assert tasks[0].dev is None and tasks[1].dev == tmp_path / "s" / "beta" / "dev.csv"
    assert [t.name for t in discover_tasks([tmp_path / "s" / "beta"])] == ["beta"]
    assert [t.name for t in discover_tasks([tmp_path / "s"], only=["beta"])] == ["beta"]
    with pytest.raises(InputDataError, match="no such task: gamma"):
        discover_tasks([tmp_path / "s"], only=["gamma"])


def test_load_task_encodes_class_ids_and_knows_fixed_lengths(tmp_path):
    data = load_task(discover_tasks([write_task(tmp_path / "t", TRAIN, TEST, dev=TEST)])[0])
    assert data.spec.task == "binary" and data.spec.labels == ("a", "b")
    assert data.y_train.tolist() == [0, 1, 0, 1] and data.y_test.dtype.kind == "i"
    assert data.y_dev.tolist() == [0, 1]
    assert data.fixed_length == 6
    varied = write_task(tmp_path / "v", TRAIN + "ACGTACGT,a\n", TEST)
    assert load_task(discover_tasks([varied])[0]).fixed_length is None


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"train.csv": TRAIN}, r"without test\.csv"),
        ({"test.csv": TEST, "train.csv": "sequence,label\n"}, r"train\.csv: no data rows"),
        ({"train.csv": "sequence,label\nACGT,a\nACGA,a\n", "test.csv": TEST}, "class"),
        ({"train.csv": TRAIN, "test.csv": TEST + "ACGTTT,c\n"}, r"test\.csv.*line 4"),
        ({"train.csv": TRAIN, "test.csv": TEST + "ACGTXT,a\n"}, r"test\.csv.*line 4"),
        ({"train.csv": "sequence,label\nACGT,0.5\nACGA,1.5\n", "test.csv": TEST}, "classification"),
    ],
)
def test_bad_tasks_name_the_file(tmp_path, files, message):
    folder = tmp_path / "suite" / "task"
    folder.mkdir(parents=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    with pytest.raises(InputDataError, match=message):
        for task in discover_tasks([tmp_path / "suite"]):
            load_task(task)


def test_a_suite_without_tasks_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputDataError, match="no task folders"):
        discover_tasks([tmp_path / "empty"])
    with pytest.raises(InputDataError, match="not a folder"):
        discover_tasks([tmp_path / "missing"])


def test_published_numbers_come_from_task_suite_and_extra_files(tmp_path):
    suite = tmp_path / "s"
    write_task(suite / "a", TRAIN, TEST)
    write_task(suite / "b", TRAIN, TEST)
    (suite / "a" / "published.yaml").write_text("metric: mcc\nvalue: 70.5\nsource: paper A\n")
    (suite / "published.yaml").write_text(
        "b: {metric: mcc, value: 60, source: suite file}\nother: {metric: mcc, value: 1}\n"
    )
    tasks = discover_tasks([suite])
    assert read_published(tasks) == {
        "a": {"metric": "mcc", "value": 70.5, "source": "paper A"},
        "b": {"metric": "mcc", "value": 60.0, "source": "suite file"},
    }
    extra = tmp_path / "extra.yaml"
    extra.write_text("b: {metric: mcc, value: 61.5, source: extra}\n")
    assert read_published(tasks, extra)["b"]["value"] == 61.5
    extra.write_text("b: {metric: mcc, value: high}\n")
    with pytest.raises(InputDataError, match="extra.yaml: task b: value 'high' is not a number"):
        read_published(tasks, extra)
