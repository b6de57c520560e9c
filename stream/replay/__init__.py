"""Offline work on the decision log: export it, join it, and evaluate policies on it.

Kept in small modules, imported lazily by ``eddy export`` and ``eddy replay``
(this package's ``__init__`` imports nothing heavy, so ``eddy --help`` stays fast):

* :mod:`stream.replay.rounds`: the joined log record and the two join modes
  (Outcome records, or decisions + raw feedback under ``stream.engine.joins.classify``);
* :mod:`stream.replay.source`: reading a slice from Kafka or an exported file, in bulk into columns
  (:mod:`stream.replay.columns`, :mod:`stream.replay.records` for Kafka's records);
* :mod:`stream.replay.dataset`: the log as :class:`bandits.ope.dataset.BanditFeedback` arrays;
* :mod:`stream.replay.dsjson` and :mod:`stream.replay.obp`: the two export formats
  (:mod:`stream.replay.dsjson_schema`: the DSJSON line as msgspec Structs and its JSON Schema);
* :mod:`stream.replay.targets`, :mod:`stream.replay.fn_target`,
  :mod:`stream.replay.vw_target`: target policies as (n, n_actions) action distributions;
* :mod:`stream.replay.evaluate`: estimates, intervals, ESS, diagnostics, with
  :mod:`bandits.ope`'s estimators, bootstrap (:mod:`bandits.ope.bootstrap`) and
  reward models (:mod:`bandits.ope.reward_model`, cross-fitted or in-sample);
* :mod:`stream.replay.report`: the console table, the JSON report and the plot;
* :mod:`stream.replay.slicing` (light: the shared CLI options) and
  :mod:`stream.replay.pipeline` (the ``eddy replay`` steps as functions);
* :mod:`stream.replay.synthetic`: seeded synthetic logs for tests and benchmarks.

docs/replay.md is the user's guide.
"""
