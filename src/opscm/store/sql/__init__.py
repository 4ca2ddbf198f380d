"""SQL implementations of the service ports, one module per aggregate."""

from .access_keys import SqlAccessKeys
from .associations import SqlAssociations
from .backups import SqlBackups
from .chef import SqlChefClients
from .events import SqlEvents
from .jobs import SqlJobs
from .nodes import SqlNodes
from .puppet import SqlPuppetCas
from .servers import SqlServers
from .tags import SqlTags

__all__ = [
    "SqlAccessKeys",
    "SqlAssociations",
    "SqlBackups",
    "SqlChefClients",
    "SqlEvents",
    "SqlJobs",
    "SqlNodes",
    "SqlPuppetCas",
    "SqlServers",
    "SqlTags",
]
