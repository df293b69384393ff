"""Writes. Every page, API view, admin action, command and task that changes data calls a function here.

Names say what they change: `<entity>_<action>`. Each checks the permission it needs (through
captioning.selectors) and raises django.core.exceptions.PermissionDenied or ValidationError.
"""
