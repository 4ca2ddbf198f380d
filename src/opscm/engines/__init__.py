"""Engines behind the service's Engine port: opscm's built-in Puppet CA and Chef registry."""
