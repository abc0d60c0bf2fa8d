"""Commands run by hand print one line for a database error, never a traceback."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import OperationalError

from remarket_mailer.errors import RemarketError
from remarket_mailer.services.unit_of_work import database_errors_in_one_line


def test_a_database_error_becomes_its_first_line() -> None:
    cause = Exception('relation "discount_codes" does not exist\nLINE 1: SELECT ...')
    with pytest.raises(RemarketError) as raised, database_errors_in_one_line():
        raise OperationalError("SELECT 1", {}, cause)
    message = str(raised.value)
    assert message.startswith('database: relation "discount_codes" does not exist')
    assert "\n" not in message
    assert "remarket db upgrade" in message


def test_other_errors_pass_through_untouched() -> None:
    with pytest.raises(ZeroDivisionError), database_errors_in_one_line():
        _ = 1 / 0
