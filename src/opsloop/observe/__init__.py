"""opsloop.observe"""
