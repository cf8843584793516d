"""Fabric tasks that bootstrap, enroll and maintain boxes over SSH (to come with the images/provisioning issue)."""
