"""`likeness demo run`: the whole product on one machine (`steps.py`) from the project's own assets (`assets/`)."""
