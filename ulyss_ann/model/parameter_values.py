"""What users give as parameters — arrays, mappings, astropy Quantities — as plain float64 arrays.

An interpolator works in the units of its file (``I_P_UNn``: ``K``, ``dex``). Values may
come as numbers in those units, as a mapping from parameter name to values, or as
astropy Quantities in any unit that converts (``5000 * u.K``, ``-1.5 * u.dex``); the
Quantity path imports astropy only when a Quantity is given.
"""

from functools import cached_property

import numpy as np

from ulyss_ann.errors import ParameterError, first_line

__all__ = ["ParameterValues", "has_units"]


def has_units(params):
    """True when ``params`` holds an astropy Quantity (duck-typed: nothing imported for plain numbers)."""
    if type(params) is np.ndarray:  # the fitters' path: no Python loop at all
        return False
    if hasattr(params, "unit"):
        return True
    if isinstance(params, (list, tuple)):
        for value in params:
            if hasattr(value, "unit") or (isinstance(value, (list, tuple))
                                          and any(hasattr(v, "unit") for v in value)):
                return True
    return False


class ParameterValues:
    """Turns parameter values of an interpolator, in any of the accepted forms, into arrays."""

    def __init__(self, parameters):
        self.parameters = tuple(parameters)
        self.names = tuple(p.name for p in self.parameters)
        self.npar = len(self.parameters)
        self.low = np.array([p.low for p in self.parameters])
        self.high = np.array([p.high for p in self.parameters])

    def bounds_problem(self, params, strict=False):
        """None, or the one line naming the values of ``params`` (npar,) or (n, npar) outside the trained
        bounds, per parameter (the first value and how many)."""
        p = np.atleast_2d(params)
        outside = (p < self.low) | (p > self.high)
        if not outside.any():
            return None
        lines = []
        for i in np.flatnonzero(outside.any(axis=0)):
            par = self.parameters[i]
            values = p[outside[:, i], i]
            lines.append(f"{par.name} = {values[0]:g}{' …' if values.size > 1 else ''} "
                         f"({values.size} value{'s' if values.size > 1 else ''}) outside "
                         f"[{par.low:g}, {par.high:g}] {par.unit}".rstrip())
        return ("; ".join(lines) + ": the network extrapolates there"
                + ("" if strict else " (strict=True, or --strict, makes this an error)"))

    def index(self, name):
        """Index of parameter ``name`` (case-insensitive), or a ParameterError listing the names."""
        lowered = [n.lower() for n in self.names]
        try:
            return lowered.index(str(name).lower())
        except ValueError:
            raise ParameterError(f"unknown parameter '{name}'; this interpolator has "
                                 f"{', '.join(self.names)}") from None

    def as_array(self, params):
        """Parameters as a float64 array of shape (npar,) or (n, npar), in the units of the file.

        ``params`` is an array-like in network order, or a mapping from parameter
        name (case-insensitive) to a value or a sequence of values.

        Values may be astropy Quantities, converted to each parameter's unit
        (:attr:`Parameter.unit`, parsed by astropy; ``dex`` is ``u.dex``): a sequence
        with one Quantity (scalar or array) per parameter, e.g. ``[5000 * u.K,
        2 * u.dex, -1.5 * u.dex]`` (arrays broadcast to ``(n, npar)``), rows of such
        sequences, a mapping name -> Quantity, or one Quantity array of shape
        ``(npar,)`` or ``(n, npar)`` when every parameter takes its unit. Plain numbers
        beside Quantities are in the parameter's unit. For a parameter in plain ``dex``,
        an acceleration or its logarithm (``u.m / u.s**2``, ``u.dex(u.m / u.s**2)``) is
        log g in ``u.dex(u.cm / u.s**2)``, and any other logarithmic quantity of a
        physical unit is taken as it is. A unit that does not convert raises a
        :class:`~ulyss_ann.errors.ParameterError` naming the parameter.
        """
        if hasattr(params, "keys"):
            columns = [None] * self.npar
            for key in params.keys():
                index = self.index(key)
                columns[index] = self._in_unit(params[key], index)
            missing = [n for n, c in zip(self.names, columns) if c is None]
            if missing:
                raise ParameterError(f"missing parameter(s) {', '.join(missing)}; "
                                     f"this interpolator needs {', '.join(self.names)}")
            params = self._stack(columns)
        elif has_units(params):
            params = self._from_quantities(params)
        try:
            p = np.asarray(params, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ParameterError(f"parameters must be numbers: {exc}") from None
        if p.ndim not in (1, 2) or p.shape[-1] != self.npar:
            raise ParameterError(f"parameters of shape {p.shape}, expected ({self.npar},) or "
                                 f"(n, {self.npar}) in the order {', '.join(self.names)}")
        if not np.all(np.isfinite(p)):
            raise ParameterError("parameters contain NaN or infinity")
        return p

    def _stack(self, columns):
        try:
            return np.stack(np.broadcast_arrays(*columns), axis=-1)
        except ValueError:
            shapes = ", ".join(f"{n} {np.shape(c)}" for n, c in zip(self.names, columns))
            raise ParameterError(f"parameter values of shapes that do not broadcast together: {shapes}") from None

    def _from_quantities(self, params):
        """Plain float64 values, in the file's units, of parameters given with astropy Quantities."""
        if hasattr(params, "unit"):  # one Quantity array for all the parameters
            if np.ndim(params) not in (1, 2) or np.shape(params)[-1] != self.npar:
                raise ParameterError(f"parameters of shape {np.shape(params)}, expected ({self.npar},) or "
                                     f"(n, {self.npar}) in the order {', '.join(self.names)}")
            return self._stack([self._in_unit(params[..., i], i) for i in range(self.npar)])
        entries = list(params)
        if not any(hasattr(value, "unit") for value in entries):  # rows, each one value per parameter
            rows = [self._from_quantities(row) if has_units(row) else self._in_unit(row, None) for row in entries]
            try:
                return np.stack(rows)
            except ValueError:
                raise ParameterError(f"rows of parameters of shapes {', '.join(str(r.shape) for r in rows)}, "
                                     f"expected {self.npar} values each ({', '.join(self.names)})") from None
        if len(entries) != self.npar:
            raise ParameterError(f"{len(entries)} values given with units, expected one per parameter "
                                 f"({self.npar}: {', '.join(self.names)})")
        return self._stack([self._in_unit(value, i) for i, value in enumerate(entries)])

    @cached_property
    def units(self):
        """Each parameter's unit as astropy parses it (None where it cannot), built on first use."""
        import astropy.units as u

        units = []
        for par in self.parameters:
            try:
                unit = u.dex if par.unit.strip() == "dex" else u.Unit(par.unit.strip(), parse_strict="raise")
            except (ValueError, TypeError):
                unit = None
            units.append(unit)
        return units

    def in_unit(self, name, value):
        """``value`` (numbers, taken in the parameter's unit, or an astropy Quantity) as float64 in the unit
        of parameter ``name``; a unit that does not convert raises ParameterError naming the parameter."""
        return self._in_unit(value, self.index(name))

    def _in_unit(self, value, index):
        """``value`` (a number, array or Quantity) as float64 in the unit of parameter ``index``.

        ``index`` None: plain numbers only (a row of several parameters).
        """
        if not hasattr(value, "unit"):
            try:
                return np.asarray(value, dtype=float)
            except (TypeError, ValueError) as exc:
                which = "" if index is None else f"{self.names[index]}: "
                raise ParameterError(f"{which}parameters must be numbers: {first_line(exc)}") from None
        import astropy.units as u

        par, target = self.parameters[index], self.units[index]
        given = value.unit
        if target is None:
            raise ParameterError(f"{par.name} given in {given}, but this interpolator's unit '{par.unit}' is not "
                                 f"one astropy knows: give {par.name} as a plain number in {par.unit}")
        try:
            return np.asarray(value.to_value(target, equivalencies=u.temperature()), dtype=float)
        except (u.UnitsError, TypeError, ValueError):
            pass
        # log g, for a parameter the file calls 'dex': an acceleration (m/s2) or its logarithm in any unit
        # (dex(m/s2)) is log10 of g in cm/s2, the convention of stellar spectroscopy and of the GSL networks
        log_g = u.dex(u.cm / u.s ** 2)
        physical = getattr(given, "physical_unit", given)
        if target == u.dex and physical is not None and physical.is_equivalent(log_g.physical_unit):
            return np.asarray(value.to_value(log_g), dtype=float)
        # any other logarithmic quantity of a physical unit is taken as it is for a parameter in plain 'dex'
        function_unit = getattr(given, "function_unit", None)
        if target == u.dex and function_unit is not None and getattr(given, "physical_unit", None) is not None:
            try:
                return np.asarray(u.Quantity(np.asarray(value.value), function_unit).to_value(u.dex), dtype=float)
            except (u.UnitsError, TypeError, ValueError):
                pass
        shown = given.to_string() or "dimensionless"
        raise ParameterError(f"{par.name} given in {shown}, which does not convert to {par.unit} "
                             f"(this interpolator's unit of {par.name})")
