"""Atmospheric parameters from Göttingen/PHOENIX spectrum file names.

PHOENIX-ACES file names encode the parameters (Husser et al. 2013)::

    lte03500-0.50-0.0.Alpha=+0.40.PHOENIX-ACES-AGSS-COND-2011-HiRes.fits
       |     |    |          |
       Teff  logg [Fe/H]     [alpha/Fe] (absent means 0)

The character before log g is a separator (log g is never negative in the grid);
the sign before [Fe/H] is its sign ("-0.0" is solar).
"""

import re

__all__ = ["parse_phoenix_name", "read_node_list"]

_NAME = re.compile(r"lte(?P<teff>\d{4,5}(?:\.\d+)?)-(?P<logg>\d+\.\d+)(?P<feh>[+-]\d+\.\d+)"
                   r"(?:\.Alpha=(?P<alpha>[+-]\d+\.\d+))?")


def parse_phoenix_name(name):
    """Parameters of a PHOENIX file name.

    Returns
    -------
    dict with keys ``teff`` (K), ``logg`` (dex), ``feh`` (dex), ``alpha`` (dex).

    Raises
    ------
    ValueError
        If the name does not follow the PHOENIX pattern ``lteTTTTT-G.GG±Z.Z[.Alpha=±A.AA]``.
    """
    match = _NAME.search(name)
    if match is None:
        raise ValueError(f"'{name}' is not a PHOENIX file name (expected lteTTTTT-G.GG±Z.Z…)")
    return {"teff": float(match["teff"]), "logg": float(match["logg"]),
            "feh": float(match["feh"]) + 0.0,  # + 0.0 turns -0.0 into 0.0
            "alpha": float(match["alpha"]) if match["alpha"] else 0.0}


def read_node_list(path):
    """Parameters of the nodes listed in a text file, one PHOENIX name a line.

    Lines may carry a leading index (``0,lte03500-…``) as the authors' ``gsl_nodes.txt``
    does.  Returns a list of dicts as :func:`parse_phoenix_name` gives.
    """
    nodes = []
    with open(path) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                nodes.append(parse_phoenix_name(line))
            except ValueError as exc:
                raise ValueError(f"{path}, line {number}: {exc}") from None
    return nodes
