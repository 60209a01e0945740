"""opsloop.api"""
