"""opsloop.act"""
