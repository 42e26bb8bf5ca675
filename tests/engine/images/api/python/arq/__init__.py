"""Stand-in for the `arq` package in the api stand-in image (test only; not arq's code).

Debian has no arq, and PyPI cannot be reached from image builds, so this replaces the command
Dograh runs, `python -m arq <module>.WorkerSettings [--custom-log-dict <module>.<dict>]`:
the worker settings are imported (which needs DATABASE_URL/REDIS_URL, as Dograh's do), the
worker connects to its redis (`redis_settings.url`), retrying like arq's defaults (5 tries,
1 s apart) before failing, then idles polling arq's queue key every 0.5 s. A connection lost
later is retried the same way. SIGTERM or SIGINT: a clean exit 0.
"""
