"""opsloop.store"""
