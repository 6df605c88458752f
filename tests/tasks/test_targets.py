"""Tasks and targets of labelled data (genomamba.tasks.targets): which task the labels pose, their
numeric targets, and label errors naming file and line."""

from __future__ import annotations

import numpy as np
import pytest

from genomamba.errors import InputDataError
from genomamba.io.labels import read_labelled
from genomamba.tasks.targets import TaskSpec, encode_targets, infer_task
from tests.io.test_labels import write


def test_task_inference_and_overrides(tmp_path):
    def table(labels):
        rows = "".join(f"ACGT,{label}\n" for label in labels)
        return read_labelled(str(write(tmp_path, "t.csv", "sequence,label\n" + rows)))

    assert infer_task(table(["b", "a", "b"])) == TaskSpec("binary", ("a", "b"))
    assert infer_task(table(["b", "a"]), positive="a") == TaskSpec("binary", ("b", "a"))
    assert infer_task(table(["10", "2", "1"])) == TaskSpec("multiclass", ("1", "2", "10"))  # numeric order
    assert infer_task(table(["0.5", "2", "-1e-3"])).task == "regression"
    assert infer_task(table(["1", "2", "3"]), task="regression").task == "regression"
    assert infer_task(table(["a", "b"]), task="multiclass") == TaskSpec("multiclass", ("a", "b"))
    data = table(["0.5", "2"])
    assert encode_targets(data, infer_task(data)).tolist() == [0.5, 2.0]
    binary = table(["neg", "pos", "pos"])
    targets = encode_targets(binary, infer_task(binary))
    assert targets.dtype == np.float32 and targets.tolist() == [0, 1, 1]
    multi = table(["x", "z", "y"])
    assert encode_targets(multi, infer_task(multi)).tolist() == [0, 2, 1]


def test_label_errors_name_file_and_line(tmp_path):
    train = read_labelled(str(write(tmp_path, "train.csv", "sequence,label\nAC,a\nGT,b\n")))
    spec = infer_task(train)
    test = read_labelled(str(write(tmp_path, "test.csv", "sequence,label\nAC,a\nGT,c\n")))
    with pytest.raises(InputDataError) as info:
        encode_targets(test, spec)
    assert str(info.value) == (
        f"{tmp_path / 'test.csv'}: line 3: label 'c' is not in the training data (known labels: a, b)"
    )
    single = read_labelled(str(write(tmp_path, "one.csv", "sequence,label\nAC,a\nGT,a\n")))
    with pytest.raises(InputDataError, match="one.csv: the training data has a single label 'a'"):
        infer_task(single)
    empty = read_labelled(str(write(tmp_path, "e.csv", "sequence,label\nAC,a\nGT,\nGG,b\n")))
    with pytest.raises(InputDataError, match="e.csv: line 3: empty label"):
        infer_task(empty)
    values = read_labelled(str(write(tmp_path, "r.csv", "sequence,label\nAC,0.5\nGT,inf\n")))
    with pytest.raises(InputDataError, match="r.csv: line 3: label 'inf' reads as a missing or non-finite"):
        infer_task(values, task="regression")
    with pytest.raises(InputDataError, match="--positive 'c' is not a label"):
        infer_task(train, positive="c")
    with pytest.raises(InputDataError, match="a binary task needs exactly two labels"):
        infer_task(
            read_labelled(str(write(tmp_path, "3.csv", "sequence,label\nA,a\nC,b\nG,c\n"))), task="binary"
        )


@pytest.mark.parametrize(
    ("labels", "bad"),
    [(["0.51", "0.22", "nan", "1.5"], "nan"), (["yes", "no", "NaN"], "NaN"), (["1", "0", "NA"], "NA")],
)
def test_a_missing_value_label_is_an_error_not_a_class(tmp_path, labels, bad):
    rows = "".join(f"ACGT,{label}\n" for label in labels)
    data = read_labelled(str(write(tmp_path, "t.csv", "sequence,label\n" + rows)))
    line = labels.index(bad) + 2
    with pytest.raises(InputDataError, match=rf"t\.csv: line {line}: label '{bad}' reads as a missing"):
        infer_task(data)
