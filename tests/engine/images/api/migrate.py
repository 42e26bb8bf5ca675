"""Stand-in for `alembic upgrade head`: creates the table the tests write to."""

import asyncio
import os


async def main() -> None:
    import asyncpg

    url = os.environ["DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://", 1)
    for _attempt in range(30):
        try:
            connection = await asyncpg.connect(url)
            break
        except (OSError, asyncpg.PostgresError):
            await asyncio.sleep(1)
    else:
        raise SystemExit("postgres never answered")
    await connection.execute(
        "CREATE TABLE IF NOT EXISTS calls (id serial PRIMARY KEY, note text NOT NULL)"
    )
    await connection.close()


asyncio.run(main())
