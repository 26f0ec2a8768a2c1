"""Marathon on Corral: long-running services as a framework on the Mesos master, with the
Marathon v2 REST API that the ``marathon`` 0.13.0 client uses (docs/marathon.md).

The pure modules: ``apps`` (an app definition: validation, defaults, versions, the JSON
the client accepts), ``groups`` (nesting, dependencies, start and stop order), ``plan``
(deployment plans, the rolling replacement rule, deployment locks)."""
