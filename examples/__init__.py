"""Runnable examples, one per user story of Flatfile's jobs guide.

Each module has a `listener` (built by its `register` plugin), a `scenario(api)`
that sets up what the story needs and presses the button, and a `__main__`
block. Run one from the repository root:

    python -m examples.action_export   # an action-based job: export a sheet to CSV
    python -m examples.custom_job      # a custom job created by a listener on commit:created
    python -m examples.outcomes        # one action per kind of `next` button
    python -m examples.failing_job     # jobs that fail: a raising handler and bad input
    python -m examples.ticking_job     # a job that reports its progress as it goes
    python -m examples.import_contacts # a file action: import an uploaded CSV, with an error report

`listener demo` runs them all at once with live progress. With `--url URL --token TOKEN`
an example only presses its buttons on that server and prints the ids of the jobs it
started, for a worker (`listener run examples/<name>.py`) to handle.
"""

STORIES = ("action_export", "custom_job", "outcomes", "failing_job", "ticking_job", "import_contacts")
"""The example modules, in the order the demo runs them."""
