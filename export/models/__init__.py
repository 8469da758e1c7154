"""Model families, one file each (timm style): ``heartbeit``."""
