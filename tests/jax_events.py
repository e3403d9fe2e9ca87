"""Counting what JAX does behind a test's back: every XLA compilation, by function name."""

import jax


def count_compilations():
  """A list that collects the name of every XLA compilation from now on, and its unregister function."""
  names = []
  listener = lambda event, duration, **kw: (event == "/jax/core/compile/backend_compile_duration"
                                            and names.append(kw.get("fun_name")))
  jax.monitoring.register_event_duration_secs_listener(listener)
  return names, lambda: jax.monitoring.unregister_event_duration_listener(listener)
