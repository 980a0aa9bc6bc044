"""The native engine's search among the guesses: the two best starts first, every guess where they do not settle it."""

import json

import numpy as np
import pytest

from conftest import MODEL, TRUTH, simulated_batch
from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.fitting.core import FitConfig
from ulyss_ann.fitting.native_engine import start_search
from ulyss_ann.fitting.native_engine.engine import NativeEngine
from ulyss_ann.fitting.native_engine.start_search import fit_guesses
from ulyss_ann.spectra.readers import read_spectrum

LOWER, UPPER, FREE = np.array([-10.0]), np.array([10.0]), np.array([True])


def double_well(theta, owners):
    """χ² of r = (θ² − 1, 0.3 (θ − 1), 0.1): a global minimum at θ = 1 (χ² 0.01) and a local one near θ = −1
    (χ² 0.37)."""
    x = theta[:, 0]
    r = np.stack([x * x - 1, 0.3 * (x - 1), np.full_like(x, 0.1)], axis=1)
    jac = np.stack([2 * x, np.full_like(x, 0.3), np.zeros_like(x)], axis=1)
    return (r * r).sum(1), (jac * r).sum(1)[:, None], (jac * jac).sum(1)[:, None, None], r.copy()


def test_two_starts_in_one_bowl_settle_the_spectrum_and_the_others_are_not_fitted():
    starts = np.array([[-1.05], [-0.95], [3.0]])  # the two lowest starting χ² lie in the local minimum's bowl
    fits = fit_guesses(double_well, starts, np.zeros(3, int), LOWER, UPPER, FREE)
    assert fits.ran.tolist() == [True, True, False]
    assert np.allclose(fits.theta[:2, 0], fits.theta[0, 0]) and fits.theta[0, 0] < 0
    every = fit_guesses(double_well, starts, np.zeros(3, int), LOWER, UPPER, FREE, search="all")
    assert every.ran.all() and every.theta[np.argmin(every.cost), 0] == pytest.approx(1.0, abs=1e-4)


def test_two_starts_that_end_apart_start_the_others():
    starts = np.array([[-1.1], [1.2], [2.5], [-3.0]])
    fits = fit_guesses(double_well, starts, np.zeros(4, int), LOWER, UPPER, FREE)
    every = fit_guesses(double_well, starts, np.zeros(4, int), LOWER, UPPER, FREE, search="all")
    assert fits.ran.all()
    assert np.allclose(fits.theta, every.theta, atol=1e-6) and np.allclose(fits.cost, every.cost, atol=1e-12)


def test_a_long_path_starts_the_others_at_once(monkeypatch):
    """A first fit still running after QUICK_STEPS steps starts every guess then, not after it ends: from θ = 4
    LM needs more than 2 steps to reach the minimum at 1."""
    monkeypatch.setattr(start_search, "QUICK_STEPS", 2)
    seen = []
    real = start_search._Release.__call__

    def spy(self, theta, cost, grad, jtj, steps, answer, live, held):
        start = real(self, theta, cost, grad, jtj, steps, answer, live, held)
        seen.append((steps.copy(), live.copy(), start.copy()))
        return start

    monkeypatch.setattr(start_search._Release, "__call__", spy)
    fits = fit_guesses(double_well, np.array([[4.5], [4.0], [-10.0]]), np.zeros(3, int), LOWER, UPPER, FREE)
    steps, live, _ = next(state for state in seen if state[2].any())
    assert live[:2].any() and steps[:2].max() == 3  # started as soon as a first fit passed 2 steps, still running
    assert fits.ran.all() and fits.theta[np.argmin(fits.cost), 0] == pytest.approx(1.0, abs=1e-4)


def test_a_singular_error_or_a_different_bound_is_no_agreement():
    from ulyss_ann.fitting.native_engine.start_search import _Release

    release = _Release(np.zeros(3, int), np.array([0, 1]), np.array([0]), LOWER[:1], UPPER[:1])

    def agree(theta, grad, jtj):
        return bool(release._agree([np.array([0, 1])], theta, grad, jtj)[0])

    theta = np.array([[1.0], [1.0], [0.0]])
    grad = np.zeros((3, 1))
    singular = np.zeros((3, 1, 1))           # JᵀJ = 0: no error can be had
    assert not agree(theta, grad, singular)
    jtj = np.full((3, 1, 1), 1e4)             # error 0.01
    assert agree(theta + [[0.0], [0.004], [0.0]], grad, jtj)
    assert not agree(theta + [[0.0], [0.006], [0.0]], grad, jtj)
    pegged = np.array([[-10.0], [10.0], [0.0]])  # one on each bound, pushed outwards: errors 0, far apart
    push = np.array([[1.0], [-1.0], [0.0]])
    assert not agree(pegged, push, jtj)
    both = np.array([[-10.0], [-10.0], [0.0]])   # both on the same bound: the same answer
    assert agree(both, np.array([[1.0], [1.0], [0.0]]), jtj)


def test_the_spectra_ending_together_are_judged_each_on_its_own():
    from ulyss_ann.fitting.native_engine.start_search import _Release

    owners = np.repeat(np.arange(4), 2)
    release = _Release(owners, np.arange(8), np.array([0]), LOWER[:1], UPPER[:1])
    theta = np.array([[1.0], [1.004], [1.0], [1.006], [2.0], [2.0], [-10.0], [10.0]])
    grad = np.array([[0.0]] * 6 + [[1.0], [-1.0]])
    jtj = np.full((8, 1, 1), 1e4)            # errors 0.01
    jtj[5] = 0.0                             # spectrum 2: one singular JᵀJ
    # spectrum 0 agrees, 1 is 0.6 error apart, 2 cannot say, 3 pegged on opposite bounds; a spectrum whose
    # second fit stopped on meeting its first has one answer, and agrees with itself
    answers = [np.array([0, 1]), np.array([2, 3]), np.array([4, 5]), np.array([6, 7]), np.array([0, 0])]
    together = release._agree(answers, theta, grad, jtj)
    alone = [bool(release._agree([rows], theta, grad, jtj)[0]) for rows in answers]
    assert together.tolist() == alone == [True, False, False, False, True]


def test_the_replay_keeps_the_rows_it_records_not_the_rounds():
    # a round's arrays hold every fit's rows (a restarted spectrum's many guesses among them): the replay keeps a
    # copy of the rows it records, and gives them back without evaluating them again
    from ulyss_ann.fitting.native_engine.start_search import _Replay

    owners = np.array([0, 0, 1, 1, 1])
    calls = []

    def evaluate(thetas, rows_owners):
        calls.append(len(thetas))
        return thetas.sum(axis=1), thetas * 2.0, np.repeat(thetas[:, :, None], 2, axis=2), np.tile(thetas, 3)

    replay = _Replay(evaluate, owners)
    replay.forget(1, keep=True)                      # spectrum 1 fitted from its starts: no longer recorded
    thetas = np.arange(10.0).reshape(5, 2)
    first = replay(thetas, owners)
    kept = {id(part): part.shape[0] for arrays, _ in replay.memory[0].values() for part in arrays}
    assert set(kept.values()) == {2} and not set(kept) & {id(part) for part in first} and replay.memory[1] == {}
    again = replay(thetas[:2], owners[:2])           # spectrum 0 retraced: from memory, not evaluated
    assert calls == [5] and all(np.array_equal(a, b[:2]) for a, b in zip(again, first))


def test_the_pairs_of_guesses_are_every_two_fits_of_one_spectrum_in_order():
    from ulyss_ann.fitting.native_engine.lockstep import _pairs

    rng = np.random.default_rng(7)
    for owners in [np.repeat(np.arange(5), 6), np.array([2, 0, 2, 1, 0, 2, 2]), rng.integers(0, 6, 40), np.arange(4)]:
        expected = [(a, b) for owner in np.unique(owners) for a in np.flatnonzero(owners == owner)
                    for b in np.flatnonzero(owners == owner) if a < b]   # spectrum by spectrum, earlier then later
        first, second = _pairs(owners)
        assert list(zip(first.tolist(), second.tolist())) == expected


def test_a_guess_that_stops_on_meeting_another_takes_its_path():
    from ulyss_ann.fitting.native_engine.lockstep import _paths

    steps = np.array([9, 2, 5, 1])
    merged = np.array([-1, 0, -1, 1])       # 1 met 0 when 0 had made 3 steps; 3 met 1 when 1 had made 2
    joined = np.array([0, 3, 0, 2])
    path, answer = _paths(steps, merged, joined)
    assert path.tolist() == [9, 2 + 9 - 3, 5, 1 + (2 + 9 - 3) - 2] and answer.tolist() == [0, 0, 2, 0]


def test_each_spectrum_is_searched_on_its_own():
    starts = np.array([[-1.05], [-0.95], [3.0], [-1.1], [1.2], [2.5]])
    owners = np.array([0, 0, 0, 1, 1, 1])
    fits = fit_guesses(double_well, starts, owners, LOWER, UPPER, FREE)
    assert fits.ran.tolist() == [True, True, False, True, True, True]


@pytest.fixture(scope="module")
def stars(tmp_path_factory):
    folder = tmp_path_factory.mktemp("search")
    return [read_spectrum(p) for p in simulated_batch(folder, TRUTH, lambda i: 6.0 * i - 15.0)]


@pytest.mark.parametrize("quick", [start_search.QUICK_STEPS, 60])
def test_the_default_search_gives_every_guess_answer(stars, quick, monkeypatch):
    """The paper's six guesses. The example network's fits take 3-30 steps: with the default QUICK_STEPS some
    spectra are settled by two guesses and the others fit all six; with 60, all are settled by two. Either way
    each answer is within a tenth of the error of fitting all six, and says which guess won in the six's order."""
    monkeypatch.setattr(start_search, "QUICK_STEPS", quick)
    default = NativeEngine(FitConfig(model=MODEL, engine="native", mdegree=8)).fit_many(stars)
    every = NativeEngine(FitConfig(model=MODEL, engine="native", mdegree=8, search="all")).fit_many(stars)
    for mine, theirs in zip(default, every):
        assert theirs.n_guess == 6 and mine.n_guess in (2, 6) and mine.n_converged >= 2
        for name in ("Teff", "Logg", "Fe/H"):
            assert abs(mine.params[name] - theirs.params[name]) <= 0.1 * theirs.errors[name]
        assert abs(mine.cz - theirs.cz) <= 0.1 * theirs.e_cz
        assert mine.chi2 == pytest.approx(theirs.chi2, rel=1e-6)
    assert {r.best_guess for r in default} <= set(range(6))  # indices into the six, not into those fitted
    if quick == 60:
        assert [r.n_guess for r in default] == [2] * len(stars)
        assert max(r.best_guess for r in default) >= 2  # the two of lowest starting χ², wherever they are


def test_the_search_is_an_option_refused_where_it_does_nothing(stars, tmp_path):
    import ulyss_ann

    with pytest.raises(UlyssAnnError, match=r"search \(--search\) 'first': choose auto, adaptive, all"):
        ulyss_ann.fit_spectrum(stars[0], MODEL, engine="native", search="first")
    with pytest.raises(UlyssAnnError, match=r"search \(--search\) adaptive: the gdl engine does not take it"):
        ulyss_ann.fit([stars[0]], MODEL, output=None, engine="gdl", search="adaptive", workers=0, progress=False)
    output = tmp_path / "t.ecsv"
    ulyss_ann.fit([stars[0]], MODEL, output=str(output), engine="native", workers=0, progress=False, mdegree=8)
    record = json.loads(open(str(output) + ".journal.jsonl").readline())["record"]["config"]
    assert record["search"] == "adaptive"
    with pytest.raises(UlyssAnnError, match=r'search: "adaptive" in the journal, "all" now \(give --search adaptive\)'):
        ulyss_ann.fit([stars[0]], MODEL, output=str(output), engine="native", workers=0, progress=False, mdegree=8,
                      search="all", resume=True)  # a resumed run fits as it began, and the refusal says how
    from ulyss_ann.fitting.batch.run import run_differences

    older = dict(record)
    del older["search"]  # a run journalled before the option: every guess was fitted
    assert run_differences(older, record) == ['search: "all" in the journal, "adaptive" now (give --search all)']
    assert run_differences(older, dict(record, search="all")) == []


def test_a_spectrum_fitted_again_replays_its_first_fits_instead_of_evaluating_them(monkeypatch):
    """Started again from its starts, a first fit retraces its path point for point: those rows come from
    memory, and the answer is still the all-guess one."""
    evaluated = []

    def counted(theta, owners):
        evaluated.append(len(theta))
        return double_well(theta, owners)

    starts = np.array([[-1.1], [1.2], [2.5], [-3.0]])
    every = fit_guesses(counted, starts, np.zeros(4, int), LOWER, UPPER, FREE, search="all")
    evaluated.clear()
    fits = fit_guesses(counted, starts, np.zeros(4, int), LOWER, UPPER, FREE)
    with_replay = sum(evaluated)
    evaluated.clear()
    monkeypatch.setattr(start_search, "_Replay", lambda evaluate, owners: None)  # no memory: evaluated again
    fit_guesses(counted, starts, np.zeros(4, int), LOWER, UPPER, FREE)
    without = sum(evaluated)
    assert fits.ran.all() and np.array_equal(fits.theta, every.theta) and np.array_equal(fits.cost, every.cost)
    first_paths = int(every.rounds[[0, 1]].sum()) + 2  # the two first fits' rounds and starting points
    assert without - with_replay == first_paths
