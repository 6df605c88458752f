"""The model's inputs (genomamba.infer.model_inputs): FASTA records whole by default, windowed with
positions, BED intervals by strand, empty records skipped loudly."""

from __future__ import annotations

import pytest

from genomamba.infer.model_inputs import batches, fasta_windows


def test_whole_records_in_file_order(small_fasta):
    windows = list(fasta_windows([small_fasta]))
    assert [(w.record, w.start, w.end) for w in windows] == [("a", 0, 300), ("b", 0, 120), ("c", 0, 257)]
    assert all(w.ids.size == w.end - w.start and w.file == str(small_fasta) for w in windows)


def test_windows_cover_each_record_with_the_last_one_kept(small_fasta):
    windows = list(fasta_windows([small_fasta], window=100, stride=50))
    spans = {name: [(w.start, w.end) for w in windows if w.record == name] for name in "abc"}
    assert spans["a"] == [(0, 100), (50, 150), (100, 200), (150, 250), (200, 300)]  # the end is covered
    assert spans["b"] == [(0, 100), (50, 120)]  # the last, shorter window is kept
    whole = next(fasta_windows([small_fasta]))
    assert (windows[1].ids == whole.ids[50:150]).all()


def test_empty_record_is_skipped_with_a_warning_naming_it(tmp_path, caplog):
    path = tmp_path / "gappy.fa"
    path.write_text(">ok\nACGT\n>empty\n>next\nAC\n")
    assert [w.record for w in fasta_windows([path])] == ["ok", "next"]
    assert "gappy.fa: record 'empty' (line 3) has no sequence; skipped" in caplog.text


def test_stride_without_window_is_refused(small_fasta):
    with pytest.raises(ValueError, match="stride needs a window"):
        list(fasta_windows([small_fasta], stride=10))


def test_batches_keep_order_and_size():
    assert [list(b) for b in batches(range(7), 3)] == [[0, 1, 2], [3, 4, 5], [6]]


def test_ambiguity_codes_read_as_n_are_summed_up_once_per_file(tmp_path, caplog):
    path = tmp_path / "ambiguous.fa"
    path.write_text(">a\nACGRYT\n>b\nACGT\n>c\nKKNA\n")
    windows = list(fasta_windows([path]))
    assert [w.record for w in windows] == ["a", "b", "c"]
    warnings = [r.getMessage() for r in caplog.records if "read as N" in r.getMessage()]
    assert warnings == [f"{path}: IUPAC codes (K=2,R=1,Y=1) read as N in 2 of 3 records"]


def test_plain_acgtn_files_give_no_warning(small_fasta, caplog):
    list(fasta_windows([small_fasta]))
    assert "read as N" not in caplog.text


def test_bed_intervals_become_windows_in_genome_coordinates(tmp_path, small_fasta):
    from genomamba.alphabet import reverse_complement
    from genomamba.infer.model_inputs import bed_windows

    bed = tmp_path / "peaks.bed"
    bed.write_text("a\t10\t60\tpeak1\t0\t+\nc\t100\t157\tpeak2\t0\t-\n")
    (a, b, c) = list(fasta_windows([small_fasta]))
    whole = list(bed_windows(bed, small_fasta))
    assert [(w.record, w.start, w.end, w.name, w.strand) for w in whole] == [
        ("a", 10, 60, "peak1", "+"), ("c", 100, 157, "peak2", "-")]
    assert (whole[0].ids == a.ids[10:60]).all() and (whole[1].ids == reverse_complement(c.ids[100:157])).all()
    cut = list(bed_windows(bed, small_fasta, window=25))
    assert [(w.record, w.start, w.end) for w in cut] == [
        ("a", 10, 35), ("a", 35, 60), ("c", 100, 125), ("c", 125, 150), ("c", 150, 157)]
    assert (cut[3].ids == reverse_complement(c.ids[125:150])).all()
