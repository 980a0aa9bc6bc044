r"""An ensemble of networks as one perceptron: the mean of M networks is a network M times wider.

Networks trained on the same grid from different seeds agree where the training stars are dense and
disagree where they are few (the metal-poor, the cool giants, the hot stars), each fitting some of the
noise of the stars it learnt from. Their mean keeps what they agree on. For M networks of the same
shape and input scaling, with layers :math:`W^{(k)}_m` (bias in row 0), the mean is exactly one
network of the same depth:

* first hidden layer: the members' side by side, :math:`[W^{(1)}_1 \dots W^{(1)}_M]`;
* deeper hidden layers: block-diagonal (each member's units see only that member's), biases side by side;
* output layer: the members' weights stacked and divided by M, the bias the mean of theirs.

So the ensemble is a ULySS perceptron file like any other (GDL evaluates it, the native engine fits
with it); it costs M times a member to evaluate. The spread of the members around their mean
(:func:`member_spread`) estimates the interpolation error at a point.
"""

import numpy as np

from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.model.interpolator import Interpolator

__all__ = ["merge_ensemble", "member_spread"]


def _check_members(members):
    first = members[0]
    if len(first.weights) < 2:   # no hidden layer: the mean of linear models is a linear model, not this merge
        raise UlyssAnnError(f"{first.path or 'a member'}: an ensemble merges networks with hidden layers; "
                            f"this one has {len(first.weights) - 1}")
    for other in members[1:]:
        same = (other.parameters == first.parameters and other.activations == first.activations
                and other.wavelength == first.wavelength and other.input_map == first.input_map
                and [w.shape for w in other.weights] == [w.shape for w in first.weights])
        if not same:
            raise UlyssAnnError(f"{other.path or 'a member'}: an ensemble's networks need the same parameters, "
                                f"input scaling, architecture and wavelengths as {first.path or 'the first'}")
        # the merged file carries one NODES table: every member must have been trained on those stars
        if (other.nodes is None) != (first.nodes is None) or (
                first.nodes is not None and not np.array_equal(other.nodes, first.nodes)):
            raise UlyssAnnError(f"{other.path or 'a member'}: trained on other stars (NODES) than "
                                f"{first.path or 'the first'}; an ensemble's networks share their training grid")
    if first.activations[-1] != "linear":
        raise UlyssAnnError("an ensemble's mean is one network only when the output layer is linear")


def merge_ensemble(members, meta=()):
    """The mean of ``members`` (Interpolators of one shape) as one Interpolator (the module's text).

    Parameters
    ----------
    members : sequence of Interpolator
        Same parameters and input scaling, architecture, activations and wavelengths; linear output.
    meta : sequence of (keyword, value, comment)
        Header cards of the result (default: the first member's, with ``NMEMBERS``).

    Returns
    -------
    Interpolator
        Hidden widths M times the members'; ``evaluate`` equals the mean of the members' to rounding.
    """
    members = list(members)
    if not members:
        raise UlyssAnnError("an ensemble needs at least one network")
    _check_members(members)
    m = len(members)
    layers = [np.concatenate([net.weights[0] for net in members], axis=1)]
    for k in range(1, len(members[0].weights) - 1):
        rows, cols = members[0].weights[k].shape
        layer = np.zeros((1 + m * (rows - 1), m * cols))
        for j, net in enumerate(members):
            w = net.weights[k]
            layer[0, j * cols:(j + 1) * cols] = w[0]
            layer[1 + j * (rows - 1):1 + (j + 1) * (rows - 1), j * cols:(j + 1) * cols] = w[1:]
        layers.append(layer)
    outputs = [net.weights[-1] for net in members]
    layers.append(np.concatenate([np.mean([w[0] for w in outputs], axis=0)[None]]
                                 + [w[1:] / m for w in outputs], axis=0))
    first = members[0]
    cards = tuple(meta) if meta else tuple(c for c in first.meta if c[0] != "NMEMBERS") + (
        ("NMEMBERS", m, "networks averaged (ulyss_ann.training.ensemble)"),)
    return Interpolator(first.parameters, layers, first.activations, first.wavelength, cards, nodes=first.nodes,
                        medium=first.medium, medium_source=first.medium_source, input_map=first.input_map)


def member_spread(members, params):
    """Standard deviation (n, npix) of the members' spectra at ``params`` (n, npar): their disagreement."""
    spectra = np.stack([net.evaluate(params) for net in members])
    return spectra.std(axis=0, ddof=1) if len(members) > 1 else np.zeros(spectra.shape[1:])
