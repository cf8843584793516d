"""Branchline's test-suite: unit/ (sans-I/O, both kernel implementations), integration/ (real peers: SIPp, mosquitto, PostgreSQL, sshd), system/ (network namespaces)."""
