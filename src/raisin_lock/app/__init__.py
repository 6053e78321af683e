"""Use cases: what each ``raisin`` command does, as functions that return values.

One module per use case: :mod:`.project` (where things are, reading the
lock), :mod:`.locking` (with :mod:`.following` for Config.mk companions),
:mod:`.planning` and :mod:`.realizing`, :mod:`.inspecting` (show, graph,
diff, logs), :mod:`.init`, :mod:`.profiles`, :mod:`.gc`, :mod:`.caches`,
:mod:`.builddeps` and :mod:`.testing`. They never print: progress goes to a
``report`` callback, and the CLI (the only layer above) talks to the user.
"""
