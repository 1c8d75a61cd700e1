"""distribution's configuration file (`config.yml`): its schema, its `REGISTRY_*`
environment overrides, and the checked document every command reads."""

from regtool.config.document import ConfigDocument, from_document, load_config

__all__ = ["ConfigDocument", "from_document", "load_config"]
