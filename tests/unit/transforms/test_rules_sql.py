"""Row rules compiled to one DuckDB query: each rule flags the same rows pandas does, the
reason names every broken quarantine rule, rows keep their order, the split reads the input
once, and an ``action: fail`` rule raises with the rule, the count and masked examples."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from nexus_dagster.errors import TransformError
from nexus_dagster.relation import Relation
from nexus_dagster.spec.rules import RuleSpec
from nexus_dagster.transforms.rules_sql import RuleGateError, split_rows

AT = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


def _data(rows: int = 2000) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    frame = pd.DataFrame({
        "id": rng.integers(0, rows, rows).astype("float"),
        "amount": rng.normal(50, 40, rows).round(2),
        "status": rng.choice(["paid", "open", "void", None], rows),
        "code": rng.choice(["AB-1", "ab-2", "XY-33", "bad", None], rows),
    })
    frame.loc[rng.choice(rows, 40, replace=False), "id"] = np.nan
    frame.loc[rng.choice(rows, 30, replace=False), "amount"] = np.nan
    return frame


#: rule -> what pandas calls a broken row
CASES = [
    ({"column": "id", "check": "not_null"}, lambda f: f.id.isna()),
    ({"column": "id", "check": "unique"}, lambda f: f.id.notna() & f.id.duplicated(keep=False)),
    ({"column": "status", "check": "accepted_values", "values": ["paid", "open"]},
     lambda f: f.status.notna() & ~f.status.isin(["paid", "open"])),
    ({"column": "amount", "check": "range", "min": 0, "max": 100},
     lambda f: f.amount.notna() & ((f.amount < 0) | (f.amount > 100))),
    ({"column": "code", "check": "regex", "pattern": "[A-Z]{2}-[0-9]+"},
     lambda f: f.code.notna() & ~f.code.str.fullmatch(r"[A-Z]{2}-[0-9]+").astype(bool)),
    ({"check": "expression", "expression": "amount * 2 < 150 and status != 'void'",
      "name": "small_live"},
     lambda f: ~((f.amount * 2 < 150) & (f.status != "void"))),
]


def _relation(frame: pd.DataFrame, batch_size: int = 256) -> Relation:
    return Relation.from_table(pa.Table.from_pandas(frame, preserve_index=False),
                               "data", batch_size=batch_size)


@pytest.mark.parametrize(("rule", "broken"), CASES, ids=[c[0]["check"] for c in CASES])
def test_each_rule_quarantines_the_rows_pandas_flags(rule, broken, tmp_path):
    frame = _data()
    spec = RuleSpec.model_validate(rule)
    split = split_rows(_relation(frame), [spec], tmp_path, AT)
    expected_bad = broken(frame)
    good = split.good.to_table().to_pandas()
    pd.testing.assert_frame_equal(good, frame[~expected_bad].reset_index(drop=True))
    rejected = split.rejected.to_table().to_pandas()
    pd.testing.assert_frame_equal(rejected[frame.columns],
                                  frame[expected_bad].reset_index(drop=True))
    assert split.counts.by_rule == {spec.key: int(expected_bad.sum())}
    assert (split.counts.rows_in, split.counts.passed, split.counts.quarantined) == (
        len(frame), int((~expected_bad).sum()), int(expected_bad.sum()))
    assert set(rejected._reject_reason) <= {f"{spec.key}: {spec.describe()}"}
    assert (rejected._rejected_at == pd.Timestamp(AT)).all()


def test_the_reason_names_every_broken_rule_in_rule_order(tmp_path):
    frame = _data()
    specs = [RuleSpec.model_validate(rule) for rule, _ in CASES]
    split = split_rows(_relation(frame), specs, tmp_path, AT)
    flags = pd.DataFrame({s.key: broken(frame) for s, (_, broken) in zip(specs, CASES,
                                                                        strict=True)})
    bad = flags.any(axis=1)
    expected = ["; ".join(f"{s.key}: {s.describe()}" for s in specs if row[s.key])
                for _, row in flags[bad].iterrows()]
    rejected = split.rejected.to_table().to_pandas()
    assert list(rejected._reject_reason) == expected
    assert split.counts.by_rule == {k: int(v) for k, v in flags.sum().items()}
    assert split.good.to_table().num_rows == int((~bad).sum())


def test_the_input_is_read_once_and_both_outputs_can_be_read_again(tmp_path):
    frame = _data(500)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    opened = []

    def open_() -> Iterator[pa.RecordBatch]:
        opened.append(1)
        yield from table.to_batches(100)

    rule = RuleSpec(check="not_null", column="id")
    split = split_rows(Relation(table.schema, open_, "data"), [rule], tmp_path, AT)
    assert split.good.to_table().equals(split.good.to_table())
    assert split.rejected.to_table().num_rows == split.counts.quarantined
    assert opened == [1]


def test_a_broken_fail_rule_raises_with_count_and_masked_examples(tmp_path):
    frame = pd.DataFrame({"id": [1, 2, 3, 4], "password": ["a", None, "c", None],
                          "amount": [5.0, -1.0, -2.0, 3.0]})
    rules = [RuleSpec(check="not_null", column="password", action="fail"),
             RuleSpec(check="range", column="amount", min=0, action="fail")]
    good_rows = RuleSpec(check="not_null", column="id", action="fail")
    with pytest.raises(RuleGateError) as caught:
        split_rows(_relation(frame, 2), [good_rows, *rules], tmp_path, AT)
    message = str(caught.value)
    assert "rule 'password_not_null' (password is not null, action fail): 2 of 4 rows" in message
    assert "rule 'amount_range' (amount >= 0, action fail): 2 of 4 rows break it, " \
           "e.g. [-1.0, -2.0]" in message
    assert "e.g. ['***', '***']" in message  # a sensitive column's values are never shown
    assert "id_not_null" not in message
    assert caught.value.broken == ["password_not_null", "amount_range"]
    assert caught.value.counts.by_rule == {"id_not_null": 0, "password_not_null": 2,
                                           "amount_range": 2}


def test_fail_rules_split_nothing_off(tmp_path):
    frame = _data(300)
    rule = RuleSpec(check="range", column="amount", min=-1000, max=1000, action="fail")
    split = split_rows(_relation(frame), [rule], tmp_path, AT)
    assert split.good.to_table().num_rows == len(frame)
    assert split.rejected.to_table().num_rows == 0


def test_a_rule_on_an_unknown_column_names_the_rule_and_the_columns(tmp_path):
    rule = RuleSpec(check="not_null", column="amout")
    with pytest.raises(TransformError, match="rule 'amout_not_null': unknown column 'amout'; "
                                             "columns here: id, amount"):
        split_rows(_relation(pd.DataFrame({"id": [1], "amount": [2.0]})), [rule], tmp_path, AT)
