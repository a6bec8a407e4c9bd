"""anonymetry.analytics"""
