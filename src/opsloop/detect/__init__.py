"""opsloop.detect"""
