"""The parts of bench/scale.py: the database builder, the gateway processes, the load and the checks."""
