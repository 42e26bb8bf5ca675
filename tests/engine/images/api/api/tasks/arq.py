"""Stand-in for Dograh's arq worker settings, `api.tasks.arq` (test only; not Dograh's code).

Run as `python -m arq api.tasks.arq.WorkerSettings --custom-log-dict api.tasks.arq.LOG_CONFIG`,
like Dograh's start script does. Importing it needs DATABASE_URL and REDIS_URL.
"""

from dataclasses import dataclass
from typing import ClassVar

from api.constants import REDIS_URL


@dataclass
class RedisSettings:
    url: str


async def standin_noop(ctx) -> None:
    """The stand-in's only job; nothing enqueues it."""


class WorkerSettings:
    functions: ClassVar[list] = [standin_noop]
    redis_settings = RedisSettings(url=REDIS_URL)
    max_jobs = 10


LOG_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stdout": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout"}},
    "root": {"handlers": ["stdout"], "level": "WARNING"},
    "loggers": {"arq": {"level": "INFO", "handlers": ["stdout"], "propagate": False}},
}
