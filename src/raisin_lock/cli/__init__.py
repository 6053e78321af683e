"""The command line: one module per command (``register(sub)``, ``run(args, ctx) -> int``).

Only this package prints. It maps :class:`~raisin_lock.errors.RaisinError` to
exit codes (CONTRACT.md) and shows a traceback only under ``-v``.
"""
