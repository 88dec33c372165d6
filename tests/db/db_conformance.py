"""The driver contract of ``trunkline.db``, as tests that every driver must pass against its
real engine.

Subclass :class:`DatabaseConformance` in a ``Test...`` class and implement ``databases``,
which opens ``count`` databases on one fresh, empty store (a new SQLite file, a new
PostgreSQL schema) and removes the store afterwards::

    @pytest.mark.real_clock
    class TestSQLite(DatabaseConformance):
        @asynccontextmanager
        async def databases(self, count):
            ...

Each test opens its own store, so tests do not see each other's tables or rows. Checks that
something did *not* arrive (a notification rolled back) use a barrier, not a timeout: a later
notification that the contract orders after the unwanted one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import pytest

from trunkline import db
from trunkline.otp import telemetry

__all__ = ["DatabaseConformance", "enqueue"]

WAIT_S = 5.0  # for what must arrive; generous, it only matters when failing

KV = "CREATE TABLE kv (id BIGINT PRIMARY KEY, v TEXT NOT NULL)"
ROUND_TRIP = """CREATE TABLE things (
    id BIGINT PRIMARY KEY,
    small BIGINT,
    ratio DOUBLE PRECISION,
    label TEXT,
    blob BYTEA,
    flag BOOLEAN,
    doc TEXT,
    at TIMESTAMPTZ
)"""
MESSAGES_AND_JOBS = """
CREATE TABLE messages (id BIGINT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE jobs (id BIGINT PRIMARY KEY, worker TEXT NOT NULL, args TEXT NOT NULL)
"""

INSERT_JOB = db.Query("test.enqueue", "INSERT INTO jobs (id, worker, args) VALUES ($1, $2, $3)")


async def enqueue(conn: db.Queryable, job_id: int, worker: str, args: str) -> None:
    """A service that writes through whatever it is given: a database or a transaction."""
    await conn.execute(INSERT_JOB, job_id, worker, args)


async def next_note(subscription: db.Subscription) -> db.Notification:
    return await asyncio.wait_for(subscription.get(), WAIT_S)


class DatabaseConformance:
    """What every driver must do; see the module."""

    @asynccontextmanager
    async def databases(self, count: int) -> AsyncIterator[Sequence[db.Database]]:
        """``count`` open databases on one fresh store, closed and removed afterwards."""
        raise NotImplementedError
        yield []  # pragma: no cover

    @asynccontextmanager
    async def database(self, *schema: str) -> AsyncIterator[db.Database]:
        async with self.databases(1) as [database]:
            for sql in schema:
                await database.execute(sql)
            yield database

    # -- statements and types ------------------------------------------------------------

    async def test_values_round_trip(self) -> None:
        at = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)
        values = (1, 2**62, 0.5, "héllo ✓", b"\x00\xffbytes", True, '{"a": [1, 2]}', at)
        async with self.database(ROUND_TRIP) as database:
            await database.execute(
                "INSERT INTO things VALUES ($1, $2, $3, $4, $5, $6, $7, $8)", *values
            )
            await database.execute("INSERT INTO things (id, flag) VALUES ($1, $2)", 2, False)
            row = await database.fetch_one("SELECT * FROM things WHERE id = $1", 1)
            assert row is not None
            assert tuple(row) == values
            assert type(row.flag) is bool
            assert row.at == at
            assert row.at.utcoffset() == timedelta(0)
            empty = await database.fetch_one("SELECT * FROM things WHERE id = $1", 2)
            assert empty is not None
            assert empty.flag is False
            assert [empty[k] for k in ("small", "ratio", "label", "blob", "doc", "at")] == [
                None
            ] * 6

    async def test_naive_datetimes_are_taken_as_utc_and_compare_in_order(self) -> None:
        async with self.database(ROUND_TRIP) as database:
            early = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
            late = datetime(2026, 1, 1, 12, 0, 0, 1, tzinfo=UTC)
            await database.execute("INSERT INTO things (id, at) VALUES ($1, $2)", 1, late)
            await database.execute("INSERT INTO things (id, at) VALUES ($1, $2)", 2, early)
            naive = datetime(2026, 1, 1, 13, 0)
            await database.execute("INSERT INTO things (id, at) VALUES ($1, $2)", 3, naive)
            assert await database.fetch_val("SELECT at FROM things WHERE id = 3") == naive.replace(
                tzinfo=UTC
            )
            ids = await database.fetch("SELECT id FROM things WHERE at >= $1 ORDER BY at", early)
            assert [row.id for row in ids] == [2, 1, 3]

    async def test_rows_read_by_position_name_and_attribute(self) -> None:
        async with self.database(KV) as database:
            await database.execute("INSERT INTO kv (id, v) VALUES ($1, $2)", 7, "seven")
            row = await database.fetch_one("SELECT id, v FROM kv WHERE id = $1", 7)
            assert row is not None
            assert (row[0], row["id"], row.id) == (7, 7, 7)
            assert (row[1], row["v"], row.v) == ("seven", "seven", "seven")
            assert dict(row) == {"id": 7, "v": "seven"}
            assert list(row.keys()) == ["id", "v"]
            assert list(row.values()) == [7, "seven"]
            assert list(row.items()) == [("id", 7), ("v", "seven")]
            assert row.get("v") == "seven"
            assert row.get("nope", 0) == 0
            assert row == (7, "seven")
            assert len(row) == 2
            with pytest.raises(AttributeError, match="nope"):
                _ = row.nope

    async def test_execute_counts_changed_rows(self) -> None:
        async with self.database(KV) as database:
            assert await database.execute("INSERT INTO kv (id, v) VALUES ($1, $2)", 1, "a") == 1
            await database.execute("INSERT INTO kv (id, v) VALUES ($1, $2)", 2, "a")
            assert await database.execute("UPDATE kv SET v = $1 WHERE v = $2", "b", "a") == 2
            assert await database.execute("DELETE FROM kv WHERE id = $1", 99) == 0
            assert await database.execute("DELETE FROM kv") == 2

    async def test_execute_counts_nothing_for_statements_that_change_no_rows(self) -> None:
        async with self.database(KV) as database:
            await database.execute("INSERT INTO kv (id, v) VALUES (1, 'a'), (2, 'b')")
            assert await database.execute("SELECT id FROM kv") == 0
            assert await database.execute("CREATE TABLE kv_copy AS SELECT id FROM kv") == 0
            async with database.transaction() as tx:
                assert await tx.execute("SELECT id FROM kv") == 0
                assert await tx.execute("UPDATE kv SET v = $1", "c") == 2

    async def test_fetch_variants(self) -> None:
        async with self.database(KV) as database:
            assert await database.fetch("SELECT id FROM kv") == []
            assert await database.fetch_one("SELECT id FROM kv") is None
            assert await database.fetch_val("SELECT id FROM kv") is None
            await database.execute_many(
                "INSERT INTO kv (id, v) VALUES ($1, $2)", [(i, str(i)) for i in range(5)]
            )
            rows = await database.fetch("SELECT id, v FROM kv WHERE id >= $1 ORDER BY id", 2)
            assert [tuple(row) for row in rows] == [(2, "2"), (3, "3"), (4, "4")]
            assert await database.fetch_val("SELECT count(*) FROM kv") == 5

    async def test_parameters_are_numbered_and_literals_are_left_alone(self) -> None:
        async with self.database() as database:
            row = await database.fetch_one(
                "SELECT $2 AS second, $1 AS first, $2 AS again, '$1' AS literal", "a", "b"
            )
            assert row is not None
            assert tuple(row) == ("b", "a", "b", "$1")

    async def test_a_query_is_written_per_dialect(self) -> None:
        which = db.Query("test.which", postgresql="SELECT 'postgresql'", sqlite="SELECT 'sqlite'")
        async with self.database() as database:
            assert await database.fetch_val(which) == database.dialect

    async def test_execute_many_is_one_unit(self) -> None:
        async with self.database(KV) as database:
            insert = "INSERT INTO kv (id, v) VALUES ($1, $2)"
            await database.execute_many(insert, ((i, "x") for i in range(100)))
            assert await database.fetch_val("SELECT count(*) FROM kv") == 100
            with pytest.raises(db.UniqueViolation):
                await database.execute_many(insert, [(1000, "new"), (5, "dup"), (1001, "new")])
            assert await database.fetch_val("SELECT count(*) FROM kv WHERE id >= 1000") == 0

    # -- errors --------------------------------------------------------------------------

    async def test_unique_violation_names_the_statement_and_the_driver(self) -> None:
        insert = db.Query("kv.insert", "INSERT INTO kv (id, v) VALUES ($1, $2)")
        async with self.database(KV) as database:
            await database.execute(insert, 1, "a")
            with pytest.raises(db.UniqueViolation) as caught:
                await database.execute(insert, 1, "b")
            error = caught.value
            assert isinstance(error, db.IntegrityError)
            assert isinstance(error, db.QueryError)
            assert (error.statement, error.driver) == ("kv.insert", database.dialect)
            assert str(error).startswith(f"kv.insert on {database.dialect}: ")
            assert error.constraint
            assert error.code
            assert await database.fetch_val("SELECT v FROM kv WHERE id = 1") == "a"

    async def test_other_constraints_are_integrity_errors(self) -> None:
        schema = (
            KV,
            "CREATE TABLE refs (id BIGINT PRIMARY KEY, kv_id BIGINT NOT NULL REFERENCES kv (id))",
        )
        async with self.database(*schema) as database:
            with pytest.raises(db.IntegrityError) as not_null:
                await database.execute("INSERT INTO kv (id, v) VALUES ($1, $2)", 1, None)
            assert not isinstance(not_null.value, db.UniqueViolation)
            with pytest.raises(db.IntegrityError) as foreign:
                await database.execute("INSERT INTO refs (id, kv_id) VALUES ($1, $2)", 1, 42)
            assert not isinstance(foreign.value, db.UniqueViolation)

    async def test_a_bad_statement_is_a_query_error_named_by_its_first_words(self) -> None:
        async with self.database() as database:
            with pytest.raises(db.QueryError) as caught:
                await database.fetch("SELECT * FROM nowhere WHERE 1 = $1", 1)
            assert not isinstance(caught.value, db.IntegrityError)
            assert caught.value.statement == "select nowhere"
            assert "nowhere" in caught.value.message

    # -- transactions --------------------------------------------------------------------

    async def test_a_transaction_commits_at_the_end_of_its_block(self) -> None:
        async with self.database(KV) as database:
            async with database.transaction() as tx:
                await tx.execute("INSERT INTO kv (id, v) VALUES ($1, $2)", 1, "a")
                assert await tx.fetch_val("SELECT v FROM kv WHERE id = 1") == "a"
            assert await database.fetch_val("SELECT v FROM kv WHERE id = 1") == "a"

    async def test_a_transaction_rolls_back_when_its_block_raises(self) -> None:
        async with self.database(KV) as database:

            async def change_mind() -> None:
                async with database.transaction() as tx:
                    await tx.execute("INSERT INTO kv (id, v) VALUES ($1, $2)", 1, "a")
                    raise RuntimeError("changed my mind")

            with pytest.raises(RuntimeError, match="changed my mind"):
                await change_mind()
            assert await database.fetch_val("SELECT count(*) FROM kv") == 0

    async def test_a_service_writes_in_the_callers_transaction(self) -> None:
        async with self.database() as database:
            await database.migrate({"test": [db.Migration(1, "schema", MESSAGES_AND_JOBS)]})
            async with database.transaction() as tx:
                await tx.execute("INSERT INTO messages (id, body) VALUES ($1, $2)", 1, "hi")
                await enqueue(tx, 1, "deliver", "1")
            assert await database.fetch_val("SELECT count(*) FROM messages") == 1
            assert await database.fetch_val("SELECT worker FROM jobs WHERE id = 1") == "deliver"

            async def post_to_a_missing_room() -> None:
                async with database.transaction() as tx:
                    await tx.execute("INSERT INTO messages (id, body) VALUES ($1, $2)", 2, "yo")
                    await enqueue(tx, 2, "deliver", "2")
                    raise LookupError("no such room")

            with pytest.raises(LookupError):
                await post_to_a_missing_room()
            assert await database.fetch_val("SELECT count(*) FROM messages") == 1
            assert await database.fetch_val("SELECT count(*) FROM jobs") == 1
            await enqueue(database, 3, "standalone", "")
            assert await database.fetch_val("SELECT count(*) FROM jobs") == 2

    async def test_savepoints_roll_back_alone(self) -> None:
        insert = "INSERT INTO kv (id, v) VALUES ($1, $2)"

        async def duplicate(tx: db.Transaction) -> None:
            async with tx.transaction() as savepoint:
                assert savepoint.is_savepoint
                await savepoint.execute(insert, 2, "inner")
                await savepoint.execute(insert, 1, "duplicate")

        async def drop_deeper(savepoint: db.Transaction) -> None:
            async with savepoint.transaction() as deeper:
                await deeper.execute(insert, 4, "dropped")
                raise ValueError("deeper")

        async with self.database(KV) as database:
            async with database.transaction() as tx:
                await tx.execute(insert, 1, "outer")
                with pytest.raises(db.UniqueViolation):
                    await duplicate(tx)
                async with tx.transaction() as savepoint:
                    await savepoint.execute(insert, 3, "kept")
                    with pytest.raises(ValueError, match="deeper"):
                        await drop_deeper(savepoint)
                await tx.execute(insert, 5, "after")
            rows = await database.fetch("SELECT id FROM kv ORDER BY id")
            assert [row.id for row in rows] == [1, 3, 5]

    async def test_after_a_failed_statement_the_transaction_can_only_roll_back(self) -> None:
        insert = "INSERT INTO kv (id, v) VALUES ($1, $2)"
        async with self.database(KV) as database:
            await database.execute(insert, 1, "a")

            async def swallow_a_failure() -> None:
                async with database.transaction() as tx:
                    await tx.execute(insert, 2, "b")
                    with pytest.raises(db.UniqueViolation):
                        await tx.execute(insert, 1, "again")
                    with pytest.raises(db.TransactionAborted):
                        await tx.fetch_val("SELECT count(*) FROM kv")

            with pytest.raises(db.TransactionAborted) as aborted:
                await swallow_a_failure()
            assert isinstance(aborted.value.__cause__, db.UniqueViolation)
            assert await database.fetch_val("SELECT count(*) FROM kv") == 1

    async def test_transactions_are_refused_when_misused(self) -> None:
        async with self.database(KV) as database:
            tx = database.transaction()
            with pytest.raises(db.TransactionError, match="not begun"):
                await tx.execute("SELECT 1")
            async with tx, tx.transaction():
                with pytest.raises(db.TransactionError, match="savepoint open"):
                    await tx.execute("SELECT 1")
            with pytest.raises(db.TransactionError, match="ended"):
                await tx.execute("SELECT 1")
            with pytest.raises(db.TransactionError, match="entered once"):
                async with tx:
                    pass

    async def test_reads_outside_a_transaction_see_the_last_committed_state(self) -> None:
        insert = "INSERT INTO kv (id, v) VALUES ($1, $2)"
        count = "SELECT count(*) FROM kv"
        async with self.database(KV) as database:
            await database.execute(insert, 1, "committed")
            async with database.transaction() as tx:
                await tx.execute(insert, 2, "pending")
                elsewhere = asyncio.create_task(database.fetch_val(count))
                assert await asyncio.wait_for(elsewhere, WAIT_S) == 1
                assert await tx.fetch_val(count) == 2
            assert await database.fetch_val(count) == 2

    async def test_transactions_from_many_tasks_all_commit(self) -> None:
        async with self.database(KV) as database:

            async def transfer(i: int) -> None:
                async with database.transaction() as tx:
                    await tx.execute("INSERT INTO kv (id, v) VALUES ($1, $2)", i, "t")
                    await tx.execute("UPDATE kv SET v = $1 WHERE id = $2", "done", i)

            await asyncio.gather(*(transfer(i) for i in range(20)))
            assert await database.fetch_val("SELECT count(*) FROM kv WHERE v = 'done'") == 20

    # -- migrations ----------------------------------------------------------------------

    async def test_migrations_apply_once_in_order_and_are_recorded(self) -> None:
        calls = []

        async def backfill(tx: db.Transaction) -> None:
            calls.append(tx.dialect)
            await tx.execute("INSERT INTO notes (id, body) VALUES ($1, $2)", 1, "backfilled")

        migrations = [
            db.Migration(1, "create notes", "CREATE TABLE notes (id BIGINT PRIMARY KEY)"),
            db.Migration(
                2,
                "add body",
                postgresql="ALTER TABLE notes ADD COLUMN body TEXT",
                sqlite="ALTER TABLE notes ADD COLUMN body TEXT",
            ),
            db.Migration(3, "backfill", run=backfill),
        ]
        async with self.database() as database:
            assert await database.migrate({"notes": migrations}) == {"notes": [1, 2, 3]}
            assert await database.migrate({"notes": migrations}) == {}
            assert calls == [database.dialect]
            assert await database.fetch_val("SELECT body FROM notes") == "backfilled"
            records = await database.fetch(
                "SELECT version, name, checksum, applied_at FROM trunkline_migrations "
                "WHERE component = $1 ORDER BY version",
                "notes",
            )
            assert [(r.version, r.name) for r in records] == [
                (1, "create notes"),
                (2, "add body"),
                (3, "backfill"),
            ]
            assert records[0].checksum == migrations[0].checksum(database.dialect)
            assert records[2].checksum is None
            assert all(isinstance(r.applied_at, datetime) for r in records)
            more = [
                *migrations,
                db.Migration(4, "index", "CREATE INDEX notes_body ON notes (body)"),
            ]
            assert await database.migrate({"notes": more}) == {"notes": [4]}

    async def test_concurrent_migrators_apply_each_migration_exactly_once(self) -> None:
        calls = []

        async def count_call(tx: db.Transaction) -> None:
            calls.append(1)
            await tx.execute("INSERT INTO applied (step) VALUES ($1)", "python")

        migrations = [
            db.Migration(1, "log", "CREATE TABLE applied (step TEXT NOT NULL)"),
            db.Migration(2, "sql step", "INSERT INTO applied (step) VALUES ('sql')"),
            db.Migration(3, "python step", run=count_call),
        ]
        async with self.databases(2) as [first, second]:
            results = await asyncio.gather(
                first.migrate({"race": migrations}),
                second.migrate({"race": migrations}),
                first.migrate({"race": migrations}),
            )
            applied = sorted(v for result in results for v in result.get("race", []))
            assert applied == [1, 2, 3]
            assert calls == [1]
            rows = await first.fetch("SELECT step FROM applied ORDER BY step")
            assert [row.step for row in rows] == ["python", "sql"]

    async def test_a_failed_migration_leaves_nothing_and_names_itself(self) -> None:
        good = db.Migration(1, "first", "CREATE TABLE first_table (id BIGINT)")
        bad = db.Migration(
            2,
            "half broken",
            "CREATE TABLE half (id BIGINT); INSERT INTO missing_table VALUES (1)",
        )
        async with self.database() as database:
            with pytest.raises(db.MigrationError) as caught:
                await database.migrate({"shop": [good, bad]})
            error = caught.value
            assert (error.component, error.version, error.name) == ("shop", 2, "half broken")
            assert "shop v2 (half broken)" in str(error)
            assert "missing_table" in str(error)
            assert isinstance(error.__cause__, db.QueryError)
            versions = await database.fetch(
                "SELECT version FROM trunkline_migrations WHERE component = 'shop'"
            )
            assert [row.version for row in versions] == [1]
            assert await database.fetch_val("SELECT count(*) FROM first_table") == 0
            with pytest.raises(db.QueryError):
                await database.fetch_val("SELECT count(*) FROM half")

    async def test_a_changed_applied_migration_is_refused(self) -> None:
        v1 = db.Migration(1, "create", "CREATE TABLE t1 (id BIGINT)")
        async with self.database() as database:
            await database.migrate({"app": [v1]})
            edited = db.Migration(1, "create", "CREATE TABLE t1 (id BIGINT, extra TEXT)")
            v2 = db.Migration(2, "next", "CREATE TABLE t2 (id BIGINT)")
            with pytest.raises(db.MigrationChecksumMismatch, match="app v1"):
                await database.migrate({"app": [edited, v2]})
            with pytest.raises(db.QueryError):
                await database.fetch_val("SELECT count(*) FROM t2")
            assert await database.migrate({"app": [v1, v2]}) == {"app": [2]}

    # -- notifications -------------------------------------------------------------------

    async def test_notifications_are_delivered_when_the_transaction_commits(self) -> None:
        async with self.database() as database, database.listen("jobs") as subscription:
            async with database.transaction() as tx:
                await tx.notify("jobs", "first")
                await tx.notify("jobs", "second")
                await tx.fetch_val("SELECT 1")
                assert subscription.get_nowait() is None
            assert await next_note(subscription) == ("jobs", "first")
            assert await next_note(subscription) == ("jobs", "second")

    async def test_rolled_back_notifications_are_never_delivered(self) -> None:

        async def notify_and_fail(conn: db.Database | db.Transaction, payload: str) -> None:
            async with conn.transaction() as tx:
                await tx.notify("jobs", payload)
                raise RuntimeError(payload)

        async with self.database() as database, database.listen("jobs") as subscription:
            with pytest.raises(RuntimeError):
                await notify_and_fail(database, "rolled back")
            async with database.transaction() as tx:
                await tx.notify("jobs", "kept")
                with pytest.raises(RuntimeError):
                    await notify_and_fail(tx, "savepoint rolled back")
            await database.notify("jobs", "barrier")
            assert await next_note(subscription) == ("jobs", "kept")
            assert await next_note(subscription) == ("jobs", "barrier")

    async def test_every_listener_gets_every_notification_on_its_channels(self) -> None:
        async with (
            self.database() as database,
            database.listen("a") as first,
            database.listen("a", "b") as second,
        ):
            third = await database.listen("b")
            await database.notify("a", "ünïcode payload ✓")
            await database.notify("b", "")
            assert await next_note(first) == ("a", "ünïcode payload ✓")
            assert await next_note(second) == ("a", "ünïcode payload ✓")
            assert await next_note(second) == ("b", "")
            assert await next_note(third) == ("b", "")
            await third.close()
            assert third.closed
            with pytest.raises(db.SubscriptionClosed):
                await third.get()
            await database.notify("b", "after")
            assert await next_note(second) == ("b", "after")

    async def test_a_channel_named_twice_is_delivered_once(self) -> None:
        async with self.database() as database:
            subscription = await database.listen("twice", "twice")
            assert subscription.channels == ("twice",)
            await database.notify("twice", "1")
            await database.notify("twice", "2")
            assert await next_note(subscription) == ("twice", "1")
            assert await next_note(subscription) == ("twice", "2")
            await subscription.close()
            assert len(subscription) == 0
            again = await database.listen("twice")
            await database.notify("twice", "3")
            assert await next_note(again) == ("twice", "3")

    async def test_subscriptions_end_when_the_database_closes(self) -> None:
        async with self.database() as database:
            subscription = await database.listen("x")
            waiting = asyncio.create_task(anext(subscription))
            await asyncio.sleep(0)
            await database.close()
            with pytest.raises(StopAsyncIteration):
                await asyncio.wait_for(waiting, WAIT_S)

    # -- telemetry -----------------------------------------------------------------------

    async def test_every_statement_is_a_telemetry_span(self) -> None:
        insert = db.Query("kv.insert", "INSERT INTO kv (id, v) VALUES ($1, $2)")
        events = [(*db.QUERY_EVENT, kind) for kind in ("start", "stop", "exception")]
        async with self.database(KV) as database:
            with telemetry.capture(events) as seen:
                await database.execute(insert, 1, "a")
                await database.fetch("SELECT id FROM kv")
                with pytest.raises(db.UniqueViolation):
                    await database.execute(insert, 1, "again")
            kinds = [emitted.event[-1] for emitted in seen]
            assert kinds == ["start", "stop", "start", "stop", "start", "exception"]
            start, stop, fetch_start, fetch_stop, error_start, error = seen
            assert start.event == (*db.QUERY_EVENT, "start")
            assert start.metadata["statement"] == "kv.insert"
            assert start.metadata["driver"] == database.dialect
            assert start.metadata["method"] == "execute"
            assert set(start.measurements) == {"monotonic_time", "system_time"}
            assert stop.event == (*db.QUERY_EVENT, "stop")
            assert stop.measurements["rows"] == 1
            assert stop.measurements["duration"] >= 0
            context = start.metadata["telemetry_span_context"]
            assert stop.metadata["telemetry_span_context"] == context
            assert fetch_start.metadata["statement"] == "select kv"
            assert fetch_stop.measurements["rows"] == 1
            assert error_start.metadata["telemetry_span_context"] != context
            assert error.event == (*db.QUERY_EVENT, "exception")
            assert error.metadata["kind"] == "error"
            assert isinstance(error.metadata["reason"], db.UniqueViolation)
            assert error.metadata["stacktrace"]

    # -- the database's life -------------------------------------------------------------

    async def test_a_closed_database_refuses_everything(self) -> None:
        async with self.database() as database:
            await database.close()
            await database.close()
            assert database.closed
            with pytest.raises(db.DatabaseClosed):
                await database.fetch_val("SELECT 1")
            with pytest.raises(db.DatabaseClosed):
                async with database.transaction():
                    pass
            with pytest.raises(db.DatabaseClosed):
                await database.notify("x", "y")
            with pytest.raises(db.DatabaseClosed):
                await database.listen("x")

    async def test_connect_refuses_a_bad_url_at_once(self) -> None:
        with pytest.raises(db.InvalidURL, match=r"mysql://me:\*\*\*@host/db"):
            db.connect("mysql://me:secret@host/db")
