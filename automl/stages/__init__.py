"""The stages of `automl fit`, in the order automl/runner.py runs them, each a function from small
typed values to a small typed value:

- prepare (prepare.py): read, validate, infer the problem and the column types, hold out test
  rows, make the folds -> :class:`~automl.stages.prepare.Prepared`
- plan (plan.py): the candidates -> :class:`~automl.stages.plan.Plan`
- search (search.py): tune every candidate -> :class:`~automl.stages.search.SearchOutcome`
- select (select.py): ensemble, re-rank, refit or bag, gates -> :class:`~automl.selection.final.Selection`
- publish (publish.py): model, leaderboard, summary, report, notebooks, manifest

:class:`~automl.stages.env.RunEnv` carries what every stage may read: the config, the folder it
writes and the clock.
"""
