"""The distributed mode (``scale.mode=distributed``): a table beyond one machine's memory.

The table is read as a Ray Dataset and never materialised on the driver (``dataset.py``); it is
profiled with streaming aggregations and a sample (``profile.py``), split into training,
validation and test rows by a hash of each row (``split.py``); XGBoost trials run as Ray Train
jobs inside one Tune search, the other candidates on a sample that fits one worker
(``trials.py``, ``xgb.py``, ``search.py``); ``flow.py`` writes the same run folder as a
single-machine fit. See docs/distributed.md.
"""
