"""``opsloop up --demo``: the platform plus a simulated estate, to see the whole loop at once.

* :mod:`~opsloop.demo.files` writes the demo's runbooks and the churn model's pipeline into the
  home (only files that are not there yet, so an operator's edits survive);
* :mod:`~opsloop.demo.churn_steps` is that pipeline: training data → model → registered version
  with its reference profile (the churn model the simulator's prediction traffic is scored by);
* :mod:`~opsloop.demo.driver` trains the model if it has no champion yet, then runs the
  simulator (``opsloop.simulate``, which talks to opsloop over HTTP and syslog only) against the
  server, in a background thread of ``opsloop up``.
"""
