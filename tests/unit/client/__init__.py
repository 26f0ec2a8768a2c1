"""Unit tests of ``corral.client``: a package so that its modules can share test servers
(``test_failover.serve_every_path``) through relative imports."""
