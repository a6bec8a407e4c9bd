"""anonymetry.client"""
