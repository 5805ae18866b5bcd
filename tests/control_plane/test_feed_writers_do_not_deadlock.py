"""Writers take the feed's counter before the rows they write, so two transactions writing the same keys in
opposite orders queue one behind the other instead of deadlocking on the counter (PostgreSQL row locks)."""

import threading
import time

import pytest
from django.db import connection, connections, transaction

from portal import services
from portal.models import APIKey
from tests.factories import TeamFactory

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks and deadlock detection: PostgreSQL"),
]


def test_two_writers_of_the_same_keys_in_opposite_orders_both_commit():
    team = TeamFactory()
    first = services.issue_api_key(team=team, name="one").api_key
    second = services.issue_api_key(team=team, name="two").api_key
    a_has_written, errors = threading.Event(), []

    def writer_a():
        try:
            with transaction.atomic():
                APIKey.objects.filter(pk=second.pk).update(name="a")  # second, then first
                a_has_written.set()
                time.sleep(0.5)  # let B reach its own write meanwhile
                APIKey.objects.filter(pk=first.pk).update(name="a")
        except Exception as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    def writer_b():
        a_has_written.wait(10)
        try:
            with transaction.atomic():
                APIKey.objects.filter(pk=first.pk).update(name="b")  # waits for A's counter, not the other way
                APIKey.objects.filter(pk=second.pk).update(name="b")
        except Exception as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer_a), threading.Thread(target=writer_b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert set(APIKey.objects.filter(pk__in=[first.pk, second.pk]).values_list("name", flat=True)) == {"b"}
