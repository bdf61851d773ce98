"""Series ordering and geometry checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ingestion_builders import Person, Site, header_of, phantom, write_series

from client_site.ingestion import SeriesRejected, hu_stats
from client_site.ingestion.hu_stats import hu_percentiles
from client_site.ingestion.series import (
    group_by_series,
    load_hu_volume,
    order_series,
    selection_key,
)
from client_site.ingestion.pixels import VolumeScratch
from client_site.ingestion.slices import SliceHeader


def _headers(paths: list[Path], root: Path) -> list[SliceHeader]:
    return [header_of(p, root) for p in paths]


def test_order_ignores_instance_number_and_file_order(site: Site) -> None:
    # Prepare: file names and InstanceNumbers are random; shuffle the list as well
    headers = _headers(site.thin_paths, site.root)
    shuffled = [headers[i] for i in np.random.default_rng(1).permutation(len(headers))]
    # Execute
    series = order_series(shuffled)
    volume = load_hu_volume(series)
    # Assert
    assert [h.rel_path for h in series.slices] == [site.rel(p) for p in site.thin_paths]
    np.testing.assert_array_equal(volume, phantom().astype(np.float32))
    assert series.spacing_mm == pytest.approx((2.5, 0.7, 0.7))
    assert series.affine[:3, 0] == pytest.approx((0, 0, 2.5))


def test_missing_slice_reports_the_gap(site: Site) -> None:
    with pytest.raises(SeriesRejected, match=r"gap of 5\.00 mm between sorted slices 3 and 4 \(of 7\).*1 slice\(s\) missing"):
        order_series(_headers(site.gap_paths, site.root))


def test_duplicate_position_and_too_few_slices(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    _, paths = write_series(tmp_path / "a", Person(), rng=rng, hu=phantom(n_slices=4), spacing=0.0)
    with pytest.raises(SeriesRejected, match="duplicate slice position"):
        order_series(_headers(paths, tmp_path))
    with pytest.raises(SeriesRejected, match="series has 2 slice"):
        order_series(_headers(paths[:2], tmp_path))


def test_uneven_spacing_rejected(site: Site) -> None:
    headers = _headers(site.thin_paths, site.root)
    moved = headers[5].__class__(**{**headers[5].__dict__, "position": (-11.2, -11.2, -100.0 + 2.5 * 5 + 0.9)})
    with pytest.raises(SeriesRejected, match="non-uniform slice spacing"):
        order_series([*headers[:5], moved, *headers[6:]])


def test_grouping_drops_duplicate_instances_and_selection_prefers_thin(site: Site) -> None:
    thin = _headers(site.thin_paths, site.root)
    thick = _headers(site.thick_paths, site.root)
    copy = thin[0].__class__(**{**thin[0].__dict__, "rel_path": "dicom/zz_copy"})  # same SOPInstanceUID
    groups, duplicates = group_by_series([*thin, copy, *thick])
    assert sorted(len(g) for g in groups.values()) == [4, 8]
    assert list(duplicates) == ["dicom/zz_copy"]
    ordered = sorted([order_series(thick), order_series(thin)], key=selection_key)
    assert len(ordered[0].slices) == 8


def test_successive_volumes_reuse_one_scratch_buffer_and_stay_exact(site: Site) -> None:
    # Prepare: one scratch buffer for two loads, as a run's builds use it
    series = order_series(_headers(site.thin_paths, site.root))
    scratch = VolumeScratch()
    # Execute
    first = load_hu_volume(series, scratch).copy()
    second = load_hu_volume(series, scratch)
    third = load_hu_volume(series, scratch)
    # Assert: the same memory each time (no fresh volume to page in), and the same HU as a fresh array
    assert np.shares_memory(second, third)
    np.testing.assert_array_equal(third, first)
    np.testing.assert_array_equal(third, load_hu_volume(series))


def test_hu_percentiles_match_numpy_on_the_sample_and_leave_the_volume_intact() -> None:
    # The percentiles partition their sample in place; the HU volume they come from must not change.
    rng = np.random.default_rng(3)
    hu = rng.normal(-300.0, 400.0, (6, 64, 64)).astype(np.float32)
    hu[:, :8] = -2048.0  # padding outside the reconstruction circle: left out
    before = hu.copy()
    sample = hu[:, ::8, ::8]
    expected = np.percentile(sample[sample >= -1100.0], [1, 50, 99])

    got = hu_percentiles(hu)

    assert got == {"p01": round(float(expected[0])), "p50": round(float(expected[1])), "p99": round(float(expected[2]))}
    np.testing.assert_array_equal(hu, before)


@pytest.mark.parametrize("n_slices", [1, 2, 3, 7, 50])
def test_hu_percentiles_of_whole_hu_values_are_numpys_without_partitioning(
    n_slices: int, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Whole-HU volumes (the usual CT) are counted, not partitioned; the result must be numpy's linear percentiles.
    rng = np.random.default_rng(n_slices)
    cases = []
    for scale in (0.2, 3.0, 400.0):  # many ties, some ties, few ties: the interpolation weights differ
        hu = np.rint(rng.normal(-200.0, scale, (n_slices, 24, 24))).astype(np.float32)
        hu[:, :, :8] = -3024.0  # padding: left out
        sample = hu[:, ::8, ::8]
        expected = np.percentile(sample[sample >= -1100.0], [1, 50, 99])
        cases.append((hu, dict(zip(("p01", "p50", "p99"), (round(float(v)) for v in expected)))))
    all_padding = np.full((n_slices, 24, 24), -2048.0, dtype=np.float32)
    monkeypatch.setattr(np, "percentile", None)  # the histogram path must not need it
    for hu, expected_percentiles in cases:
        assert hu_percentiles(hu) == expected_percentiles
    assert hu_percentiles(all_padding) is None


def test_histogram_percentiles_equal_numpy_to_the_last_bit() -> None:
    rng = np.random.default_rng(7)
    for n in (1, 2, 5, 99, 101, 1000, 4097):
        values = rng.integers(-1100, 3000, n)
        counts = np.bincount(values - values.min())
        assert hu_stats._histogram_percentiles(counts, int(values.min())) == list(np.percentile(values, [1, 50, 99]))


def test_hu_percentiles_of_fractional_hu_values_fall_back_to_numpy() -> None:
    hu = np.full((2, 16, 16), 10.25, dtype=np.float32)
    hu[1] = 20.75
    assert hu_percentiles(hu) == {"p01": 10, "p50": round(float(np.percentile(hu[:, ::8, ::8], 50))), "p99": 21}
