"""Datetime columns become numeric parts, including the trend (a day count) and the season."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from automl.candidates.processing import LEGACY_DATE_PARTS, FeatureCaster


def _frame() -> pd.DataFrame:
    return pd.DataFrame({
        "when": ["1970-01-02 12:00", "2020-02-29", None, "2021-12-31 06:00"],
        "x": [1.0, 2.0, 3.0, 4.0],
    })


def test_a_datetime_gives_its_calendar_parts_the_day_of_year_and_a_day_count():
    caster = FeatureCaster({"when": "datetime", "x": "numeric"}).fit(_frame())
    out = caster.transform(_frame())
    assert out["when__days"].iloc[0] == pytest.approx(1.5)
    assert out["when__days"].iloc[1] == (pd.Timestamp("2020-02-29") - pd.Timestamp(0)).days
    assert out["when__dayofyear"].tolist()[:2] == [2.0, 60.0]
    assert out["when__dayofweek"].iloc[1] == 5.0  # a Saturday
    assert out.iloc[2].filter(like="when__").isna().all()
    assert list(out.columns) == list(caster.get_feature_names_out())


def test_a_timezone_aware_column_counts_days_in_utc():
    caster = FeatureCaster({"when": "datetime"})
    frame = pd.DataFrame({"when": pd.to_datetime(["2020-01-01T00:00:00+02:00"])})
    out = caster.fit(frame).transform(frame)
    assert out["when__days"].iloc[0] == pytest.approx(18262 - 2 / 24)


def test_a_caster_fitted_before_the_new_parts_keeps_its_five_columns():
    caster = FeatureCaster({"when": "datetime", "x": "numeric"}).fit(_frame())
    del caster.date_parts_  # what a model saved by an earlier release holds
    caster.output_types_ = {f"when__{p}": "numeric" for p in LEGACY_DATE_PARTS} | {"x": "numeric"}
    out = caster.transform(_frame())
    assert list(out.columns) == [f"when__{p}" for p in LEGACY_DATE_PARTS] + ["x"]
    assert np.isfinite(out["when__year"].iloc[0])
