"""``eddy demo``: the whole loop live on MovieLens-100K, compared with six references and the serving layer.

Modules, in the order the demo uses them:

* :mod:`stream.demo.data`: MovieLens-100K fetched at run time into a local
  cache (never into the repository), or the built-in simulator as a fallback;
  both become the same time-ordered ``(user, context, item, reward)`` records.
* :mod:`stream.training` (the product's, not the demo's): train, register
  (with data range and held-out metric) and promote a feature net, as
  ``eddy train`` and ``eddy retrain`` do.
* :mod:`stream.demo.worker_handle`: the demo's worker, as a subprocess or a thread.
* :mod:`stream.demo.live`: the live arm, driven through Kafka against that worker.
* :mod:`stream.demo.arms`: the in-process reference arms (frozen offline
  model, periodic full retraining; outside references: river's BiasedMF,
  Baseline and FunkMF, and the per-user mean; the Velox design: online updates
  between periodic retrains; the text net with and without the feature cache).
* :mod:`stream.demo.served`: the serving layer through the worker's engine
  (:mod:`stream.demo.engine_arms`) on two nets of :mod:`stream.demo.nets`: an
  expensive one exact and under a deadline, the IDK cascade, Exp3 and Exp4;
  :mod:`stream.demo.selection` is the standalone model-selection study.
* :mod:`stream.demo.metrics`: RMSE, prequential curves and latency
  percentiles (the rolling RMSE is :mod:`stream.retrain_trigger`'s).
* :mod:`stream.demo.report`: table, JSON, markdown and the prequential plot.
* :mod:`stream.demo.pipeline`: the steps above in order.
"""
