"""The REST API (Django REST Framework): thin views that read through captioning.selectors and write through
captioning.services, with the same visibility rule as the pages. Schema at /api/schema/, docs at /api/docs/."""
