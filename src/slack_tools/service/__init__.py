"""Runtime wiring: the HTTP app, background tasks and process lifecycle."""
