"""A search space in Hydra's sweep syntax, as Optuna distributions, and a trial's overrides.

The same words mean the same values as in a grid sweep: `range(32, 257, step=32)` is 32 to
256 (Hydra's stop is exclusive), `choice(a, b)` and `a,b` are categories, `interval(a, b)` is
a uniform float (ints when both ends are ints), `tag(log, interval(a, b))` log-uniform.
"""

from typing import Any, Dict, List, Tuple

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import IntervalSweep, Override, RangeSweep, Transformer
from hydra.errors import HydraException

from mnist_exp.errors import ConfigError


def search_space(params: Dict[str, Any], arguments: List[str]) -> Tuple[Dict[str, Any], List[str]]:
    """(key -> distribution, the plain overrides every trial gets): hydra.sweeper.params first,
    then the command line's overrides, a key given twice taking its last value."""
    try:
        parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()] + list(arguments))
    except HydraException as e:
        raise ConfigError(str(e).strip().splitlines()[0]) from None
    space: Dict[str, Any] = {}
    fixed: Dict[str, str] = {}
    for override in parsed:
        key = override.get_key_element()
        space.pop(key, None)
        fixed.pop(key, None)
        if override.is_sweep_override():
            space[key] = distribution(override)
        else:
            fixed[key] = override.input_line
    return space, list(fixed.values())


def distribution(override: Override):
    """The Optuna distribution of one sweep override."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    value, key = override.value(), override.get_key_element()
    if override.is_choice_sweep() or isinstance(value, RangeSweep) and value.shuffle:
        return CategoricalDistribution(list(override.sweep_iterator(transformer=Transformer.encode)))
    if isinstance(value, RangeSweep):
        values = list(override.sweep_iterator())
        if not values:
            raise ConfigError(f"{override.input_line}: the range holds no value")
        if all(isinstance(v, int) for v in values):
            return IntDistribution(values[0], values[-1], step=int(value.step)) if len(values) > 1 \
                else CategoricalDistribution(values)
        return FloatDistribution(values[0], values[0] + value.step * (len(values) - 1), step=value.step) \
            if len(values) > 1 else CategoricalDistribution(values)
    if isinstance(value, IntervalSweep):
        log, low, high = "log" in value.tags, value.start, value.end
        ints = _typed_int(override.input_line)
        if low >= high or log and low <= 0:
            raise ConfigError(f"{key}={override.get_value_element_as_str()}: an interval needs start < end"
                              + (" and start > 0 on a log scale" if log else ""))
        return IntDistribution(int(low), int(high), log=log) if ints else FloatDistribution(low, high, log=log)
    raise ConfigError(f"{key}={override.get_value_element_as_str()}: an Optuna search takes choice(...), a,b, "
                      "range(...), interval(...) and tag(log, interval(...))")


def _typed_int(line: str) -> bool:
    """Whether interval(...)'s ends were typed as integers (Hydra reads both as floats)."""
    inner = line[line.rindex("interval(") + len("interval("):].split(")")[0]
    return all(part.strip().lstrip("+-").isdigit() for part in inner.split(","))


def overrides(params: Dict[str, Any], fixed: List[str]) -> List[str]:
    """A trial's overrides: the fixed ones, then each sampled value as the command line spells it."""
    return [*fixed, *(f"{key}={_spelled(value)}" for key, value in params.items())]


def _spelled(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)
