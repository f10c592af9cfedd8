"""A simulated ECS cluster over moto whose tasks and deployments move with a clock.

Only this package imports moto; the CLI loads it on demand.
"""
