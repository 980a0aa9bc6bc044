"""A fit warns, once per network, when the network's strong lines contradict the medium its header states
(issue 26): the header is what fits take, so a wrong one moves cz by ≈ 83 km/s unnoticed; nothing is
converted on the strength of the lines, the user is told how to convert."""

import re
import warnings
from pathlib import Path

from astropy.io import fits

import ulyss_ann
from conftest import cli_here
from ulyss_ann.errors import ModelMediumWarning
from ulyss_ann.fitting.api import fit_spectrum

DATA = Path(ulyss_ann.__file__).parent / "data"
STAR = DATA / "example_spectrum.fits"
EXAMPLE = DATA / "example_interpolator.fits"  # on air, and its header says so (CTYPE1 = 'AWAV')


def _example_copy(folder, name, ctype):
    """The bundled example network with CTYPE1 = ``ctype`` (its axis's numbers untouched) and a HISTORY
    card naming the copy: each copy is a network of its own SHA-256, checked afresh in this process."""
    path = Path(folder) / name
    with fits.open(EXAMPLE) as hdul:
        hdul[0].header["CTYPE1"] = ctype
        hdul[0].header.add_history(f"test copy {name}")
        hdul.writeto(path)
    return path


def _medium_warnings(action):
    """The ModelMediumWarning texts that ``action()`` gives (every one, even one said before)."""
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        action()
    return [str(w.message) for w in said if issubclass(w.category, ModelMediumWarning)]


def _fit(model, **options):
    return fit_spectrum(STAR, model=str(model), engine="native", mdegree=8, **options)


def test_a_network_whose_header_contradicts_its_lines_warns_once(tmp_path):
    # the example as bundled, and a copy of it (a network of its own, measured afresh): lines and header agree
    assert _medium_warnings(lambda: _fit(_example_copy(tmp_path, "agreeing.fits", "AWAV"))) == []
    assert _medium_warnings(lambda: _fit("example")) == []
    relabelled = _example_copy(tmp_path, "relabelled.fits", "WAVE")  # air lines, a header saying vacuum
    said = _medium_warnings(lambda: [_fit(relabelled) for _ in range(2)])
    assert len(said) == 1  # measured once per network, not per fit
    text = said[0]
    assert text.startswith("relabelled.fits: its lines are on air wavelengths but fits take it as vacuum "
                           "(header CTYPE1=WAVE): they sit ")
    # the measured offsets (the example's lines: −0.5 km/s from air, −84.0 from vacuum; docs/fitting.md)
    found = re.search(r"they sit ([-+]\d+\.\d) km/s from vacuum, ([-+]\d+\.\d) from air, so ", text)
    assert found, text
    assert -90 < float(found[1]) < -78 and abs(float(found[2])) < 5
    assert "cz would be off by ≈ 83 km/s" in text
    assert "--model-medium air (model_medium='air' in Python)" in text


def test_the_other_way_round_warns_too(tmp_path):
    """Vacuum lines under a header that says air, as the authors' unrecognised networks would be."""
    from dataclasses import replace

    from ulyss_ann.model.interpolator import Interpolator
    from ulyss_ann.model.medium import AIR, VACUUM, axis_in_medium

    example = Interpolator.read(EXAMPLE)
    path = tmp_path / "vacuum_lines.fits"
    replace(example, wavelength=replace(axis_in_medium(example.wavelength, AIR, VACUUM), air=True)).write(path)
    said = _medium_warnings(lambda: _fit(path))
    assert len(said) == 1 and said[0].startswith("vacuum_lines.fits: its lines are on vacuum wavelengths but fits "
                                                 "take it as air (header CTYPE1=AWAV)")
    assert "--model-medium vacuum" in said[0]


def test_a_medium_the_user_gives_is_not_second_guessed(tmp_path):
    relabelled = _example_copy(tmp_path, "given.fits", "WAVE")
    assert _medium_warnings(lambda: _fit(relabelled, model_medium="vacuum")) == []  # their choice, even wrong
    assert _medium_warnings(lambda: _fit(relabelled, model_medium="air")) == []
    assert len(_medium_warnings(lambda: _fit(relabelled))) == 1  # the same file, left to its header, warns


def test_the_command_line_says_it_in_one_line_and_not_with_model_medium(tmp_path):
    relabelled = _example_copy(tmp_path, "cli.fits", "WAVE")
    options = ["-m", relabelled, "--engine", "native", "--mdegree", "8", "-j", "0", "--quiet"]
    given = cli_here("fit", STAR, *options, "--model-medium", "vacuum", "-o", tmp_path / "given.ecsv")
    assert given.returncode == 0, given.stderr
    assert "its lines are on" not in given.stderr
    run = cli_here("fit", STAR, *options, "-o", tmp_path / "out.ecsv")
    assert run.returncode == 0, run.stderr
    said = [line for line in run.stderr.splitlines() if "its lines are on" in line]
    assert len(said) == 1 and said[0].startswith("ulyss-ann: warning: cli.fits: its lines are on air wavelengths")


def test_a_network_without_real_lines_says_nothing_and_warns_nothing():
    """Random weights on the GSL axis: minima scattered over the lines' windows. Their median fell within
    20 km/s of vacuum for seeds 19, 25, 28 and 29 (fits warned "vacuum"); most lines must agree now."""
    from conftest import make_network
    from ulyss_ann.model.line_centres import measured_medium, warn_if_lines_contradict

    for seed in (19, 25, 28, 29):
        network = make_network(seed=seed, npix=2099)
        assert network.wavelength.wavelength[0] < 4861 and network.wavelength.wavelength[-1] > 6563
        measurement = measured_medium(network)
        assert len(measurement.lines) >= 5 and measurement.medium is None, (seed, measurement.describe())
        assert _medium_warnings(lambda: warn_if_lines_contradict(network, f"random network {seed}")) == []
