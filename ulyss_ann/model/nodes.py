"""Where an interpolator's training nodes lie: their spacing, and how far a point is from them.

A network interpolates between the nodes of its training grid and extrapolates beyond them;
:class:`NodeMesh` measures that distance in the grid's own local node spacing, so that it
means the same on a regular lattice (the GSL/Göttingen grid) and on an irregular set of
stars (MILES). :class:`~ulyss_ann.model.interpolator.Interpolator` keeps one per network
(``mesh_steps``, ``node_distance``); the fits flag results far from every node with it.
"""

from functools import cached_property

import numpy as np

__all__ = ["NodeMesh"]


class NodeMesh:
    """The training nodes of a network, in node-spacing units.

    Parameters
    ----------
    nodes : ndarray, shape (n, npar)
        The parameters of the n training spectra, in the units of the network's parameters.
    """

    def __init__(self, nodes):
        self.nodes = np.asarray(nodes, dtype=float)
        self.npar = self.nodes.shape[1]

    @cached_property
    def axes(self):
        """Per parameter: (distinct values, step) for a lattice, (None, step) for continuous values.

        A parameter on a lattice — at most √n distinct values among the n nodes, as on
        the GSL/Göttingen grid — has the median spacing of its values (100 K, 0.5, 0.5
        dex there). A parameter with continuous values (MILES: 657 distinct Teff among
        771 stars) has :math:`\\sqrt{12}\\,s/n^{1/N}`, the spacing of n values spread evenly
        over its spread s (standard deviation), N parameters: the median gap between
        distinct values (4 K for MILES) would say nothing about the grid.
        """
        n = len(self.nodes)
        axes = []
        for column in self.nodes.T:
            values = np.unique(column)
            if 1 < values.size <= np.sqrt(n):
                axes.append((values, float(np.median(np.diff(values)))))
            else:
                spread = np.sqrt(12.0) * np.std(column) / n ** (1.0 / self.npar)
                axes.append((None, float(spread) if spread > 0 else 1.0))
        return axes

    @property
    def steps(self):
        """Typical node spacing of each parameter, in its unit (see :attr:`axes`)."""
        return np.array([step for _, step in self.axes])

    def coordinates(self, p):
        """Parameters ``p`` (shape (m, npar)) in node-spacing units: a lattice parameter by its index among the
        grid's values (piecewise linear, extended with the end steps), a continuous one divided by its step.
        A lattice with uneven steps (GSL: 100 K below 7000 K, 200 K above; 1 dex between [Fe/H] −3 and −2, 0.5
        above) becomes a unit lattice."""
        out = np.empty_like(p)
        for i, (values, step) in enumerate(self.axes):
            x = p[:, i]
            if values is None:
                out[:, i] = x / step
                continue
            index = np.interp(x, values, np.arange(values.size, dtype=float))
            index = np.where(x < values[0], (x - values[0]) / (values[1] - values[0]), index)
            out[:, i] = np.where(x > values[-1], values.size - 1 + (x - values[-1]) / (values[-1] - values[-2]), index)
        return out

    @cached_property
    def tree(self):
        """KD-tree of the nodes in node-spacing units, and each node's local spacing (see :meth:`distance`)."""
        from scipy.spatial import cKDTree

        coords = self.coordinates(self.nodes)
        tree = cKDTree(coords)
        k = min(2 * self.npar, len(coords) - 1)
        if k < 1:
            return tree, np.ones(len(coords))
        dist, _ = tree.query(coords, k + 1)
        spacing = dist[:, -1]
        positive = spacing[spacing > 0]
        return tree, np.maximum(spacing, positive.min() if positive.size else 1.0)

    def distance(self, p):
        """Distance of each row of ``p`` (shape (m, npar)) to the nearest node, in local node spacings.

        With :math:`u(p)` the parameters in node-spacing units (a lattice parameter by
        its index among the grid's values, a continuous one in :attr:`steps`),

        .. math::

            d(p) = \\frac{\\min_k |u(p) - u(n_k)|}{\\operatorname{median}_{j \\in J(p)} r_{2N}(n_j)},

        :math:`r_{2N}(n_j)` the distance of node :math:`n_j` to its 2N-th nearest node
        (N parameters: in a unit lattice the 2N face neighbours, 1) and :math:`J(p)` the
        N + 1 nodes nearest to p. d is the distance to the nearest node in units of how
        far apart the nodes are *there*, so that it means the same on a regular grid and
        on an irregular one such as MILES. d > 1: p is farther from every node than the
        nodes around it are from their neighbours — a hole or beyond the edge of the
        grid, where the network extrapolates. Measured (``FitResult.flags``,
        ``far-from-nodes``): on the 2908-node GSL grid of the bundled example, random
        points inside grid cells give d ≤ 0.86 (a cell centre 0.87 = √3/2 in the
        interior), 2 steps beyond the edge 1.41; on the MILES interpolator the fits of the
        573 MILES stars inside its bounds land at median d 0.43, 99th percentile 1.07
        (8 above 1, among them fits far off the catalogue, e.g. log g 2.35 dex), where the
        former per-parameter median spacing flagged all 573.
        """
        tree, spacing = self.tree
        m = min(self.npar + 1, len(self.nodes))
        dist, index = tree.query(self.coordinates(p), m)
        dist, index = dist.reshape(len(p), -1), index.reshape(len(p), -1)
        return dist[:, 0] / np.median(spacing[index], axis=1)
