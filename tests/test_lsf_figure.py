"""The LSF figure (lsf measure --plot, lsf plot): every point, error bar and line inside the axes, none on them."""

import numpy as np
from astropy.table import Table

from ulyss_ann.fitting.result_figure import plot_lsf
from ulyss_ann.fitting.lsf.measure import LSFMeasurement

WAVE = np.arange(4800.0, 7300.0, 250.0)


def _table(cz, sigma, e_cz=None, e_sigma=None):
    columns = {"wave": WAVE, "cz": cz, "sigma": sigma}
    if e_cz is not None:
        columns.update(e_cz=e_cz, e_sigma=e_sigma)
    return Table(columns)


def _inside(ax, low, high):
    bottom, top = ax.get_ylim()
    return bottom < np.min(low) and np.max(high) < top


def test_single_stars_and_error_bars_sit_inside_the_axes_and_tellurics_outside():
    scatter = np.where(np.arange(WAVE.size) % 2, 1.0, -1.0)
    combined = _table(2 * scatter, 30 + 4 * scatter, np.full(WAVE.size, 6.0), np.full(WAVE.size, 6.0))
    combined["sigma"][0] = 3.0                        # a width near its floor: its error bar goes below 0
    combined["cz"][-1] = 400.0                        # the A band, hundreds of km/s off: left outside, said
    singles = [LSFMeasurement(f"s{k}", _table(combined["cz"] + d, combined["sigma"] + d), None)
               for k, d in enumerate((-9.0, 9.0))]  # single stars beyond the combination's error bars
    fig = plot_lsf(singles, combined)
    top, bottom = fig.axes[:2]
    lsf = slice(0, -1)
    drawn = [combined, *[s.table for s in singles]]
    for ax, name in ((top, "cz"), (bottom, "sigma")):
        values = [t[name][lsf] for t in drawn]
        assert _inside(ax, np.concatenate([combined[name][lsf] - 6, *values]),
                       np.concatenate([combined[name][lsf] + 6, *values])), name
    assert top.get_ylim()[1] < 100
    assert any("outside the axes" in t.get_text() for t in top.texts)
