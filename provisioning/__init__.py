"""Fabric tasks that bootstrap, enroll and maintain boxes over SSH.

``tasks`` holds the per-host steps; each step checks before it changes anything and
reports ``changed`` or ``unchanged``, so running a bootstrap twice changes nothing the
second time. Must not import ``edge_core`` or ``fleet``: it runs on a technician's
laptop or the fleet host and only talks SSH.
"""
