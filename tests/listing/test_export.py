"""CSV cells a spreadsheet would run are neutralised, whichever way the formula is spelt."""

from __future__ import annotations

import csv
import io

import pytest

from auditwire.listing.export import CSV_COLUMNS, csv_row
from tests.records import full_record


@pytest.mark.parametrize(
    "text",
    [
        '=HYPERLINK("http://evil")',
        "+1+1",
        "-1+1",
        "@SUM(A1)",
        '\uff1dHYPERLINK("http://evil")',  # full-width equals sign
        "\uff0b1",
        "\uff0d1",
        "\uff20SUM(A1)",
        "\t=1",
        "\r=1",
        "\n=1+1",
    ],
)
def test_cells_a_spreadsheet_would_run_are_prefixed(text: str) -> None:
    out = io.StringIO()
    csv.writer(out).writerow(csv_row(full_record(message=text)))
    (parsed,) = csv.reader(io.StringIO(out.getvalue()))
    assert dict(zip(CSV_COLUMNS, parsed, strict=True))["message"] == "'" + text


def test_ordinary_cells_are_left_alone() -> None:
    cells = dict(zip(CSV_COLUMNS, csv_row(full_record()), strict=True))
    assert cells["message"] == "admin@example.com created user newuser@example.com"
