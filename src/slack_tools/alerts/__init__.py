"""The alerting domain: pure logic, no I/O (models, sources, routing, rendering)."""
