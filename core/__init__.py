"""The core: the event contract and id derivation, settings, profiles, the object layout, the
status fold, public errors and logging. It imports nothing of vidflow's other packages."""
