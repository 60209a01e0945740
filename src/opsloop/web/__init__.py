"""opsloop.web"""
