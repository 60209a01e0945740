"""opsloop.learn"""
