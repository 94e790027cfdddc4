"""Vectorized process control: PID banks, loop graphs, feed strategies, estimators, tuning.

Pure NumPy: arrays and ``dt`` in, arrays out; no I/O, clocks or logging.
"""

from controllers.feed import (DoSpikeTrigger, FeedTotaliser, OurDropTrigger, biomass_feed_l_per_h, do_stat_spec,
                              exponential_feed_l_per_h, linear_feed_l_per_h, ph_stat_spec,
                              piecewise_feed_l_per_h)
from controllers.growth import GrowthEstimator
from controllers.offgas import gas_rates, inlet_composition
from controllers.pid import PidBank, PidSpec
from controllers.program import (Cascade, ControlProgram, LoopSpec, RangeMap, SplitRange, StepResult,
                                 compile_program, sequence, split_range)
from controllers.tuning import Fopdt, Tuning, fit_fopdt, fopdt_step_response, imc_pid, simc_pi

__all__ = [
    "Cascade", "ControlProgram", "DoSpikeTrigger", "FeedTotaliser", "Fopdt", "GrowthEstimator",
    "LoopSpec", "OurDropTrigger", "PidBank", "PidSpec", "RangeMap", "SplitRange", "StepResult", "Tuning",
    "biomass_feed_l_per_h", "compile_program", "do_stat_spec", "exponential_feed_l_per_h",
    "fit_fopdt", "fopdt_step_response", "gas_rates", "imc_pid", "inlet_composition",
    "linear_feed_l_per_h", "ph_stat_spec", "piecewise_feed_l_per_h", "sequence", "simc_pi",
    "split_range",
]
