"""Pure business rules of OpsWorks CM: servers, engines, associations. No I/O here."""
